"""``rnngap claims``: run every check of the paper's claims ledger, one row per claim."""

from __future__ import annotations

import sys

import click

from rnngap.commands._common import dump_json


@click.command()
@click.option("--quick", is_flag=True, help="Small sizes (under a minute in all).")
@click.option("--claim", "only", multiple=True, help="Only these claim ids (e.g. C2).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON list with keys claim, paper_ref, status, evidence, command.")
@click.pass_context
def claims(ctx: click.Context, quick, only, as_json):
    """Check the paper's claims C1-C9, each by the rnngap commands the ledger names.

    Nothing is marked verified unless its commands just passed in this run; a claim with
    unchecked parts is 'partially verified' and says which part; a claim rnngap cannot check
    here is 'not checked' and says why. Exit code 1 if any check failed.
    """
    from tqdm import tqdm

    from rnngap.paper_refs.ledger import evaluate, load_ledger

    ledger = load_ledger()
    known = {c.claim for c in ledger}
    unknown = set(only) - known
    if unknown:
        raise click.UsageError(f"unknown claim id(s) {sorted(unknown)}; known: {sorted(known)}")
    todo = [c for c in ledger if not only or c.claim in only]
    rows = []
    bar = tqdm(total=sum(len(c.checks) for c in todo), desc="claims", file=sys.stderr,
               disable=as_json or not sys.stderr.isatty())
    interrupted = False
    try:
        for c in todo:
            # the root group (rnngap) runs the checks: nothing below imports rnngap.cli
            rows.append(evaluate(c, quick, ctx.find_root().command,
                                 progress=lambda *_: bar.update(1)))
    except KeyboardInterrupt:
        interrupted = True     # report the claims finished so far, then exit 130
    bar.close()
    if as_json:
        dump_json([{k: r[k] for k in ("claim", "paper_ref", "status", "evidence", "command")}
                   for r in rows])
    else:
        for r in rows:
            click.echo(f"{r['claim']:<3} {r['status']:<19} {r['paper_ref']}")
            click.echo(f"    {r['paraphrase']}")
            for run in next(x for x in rows if x is r)["runs"]:
                mark = "ok  " if run["passed"] else "FAIL"
                click.echo(f"    [{mark}] {run['command']}  ({run['seconds']} s)"
                           + ("" if run["passed"] else f": {run['reason']}"))
            if r["status"] != "verified":
                tail = r["evidence"].split("unchecked: ")
                if len(tail) > 1:
                    click.echo(f"    unchecked: {tail[1]}")
    if interrupted:
        click.echo(f"interrupted (Ctrl-C) after {len(rows)} of {len(todo)} claims; the rest "
                   "were not checked", err=True)
        sys.exit(130)
    if any(r["status"] == "FAILED" for r in rows):
        sys.exit(1)

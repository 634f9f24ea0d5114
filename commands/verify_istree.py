"""``rnngap verify istree``: check an IsTree method on every small graph and on samples beyond.

Methods plug in through ``METHODS`` (name -> "module:function" returning the verdict dict of
:func:`rnngap.verify.istree_rag.verify_rnn_rag`), imported only when used.
"""

from __future__ import annotations

import importlib
import sys

import click

from rnngap.commands._common import dump_json, fail

METHODS: dict[str, str] = {"rnn-rag": "rnngap.verify.istree_rag:verify_rnn_rag"}
"""method -> "module:callable"; the callable takes (n, orders=, samples=, seed=, progress=,
jobs=), returns a dict with the keys listed in ``istree --help``, and raises ValueError (shown
as a usage error) for a plan it refuses before doing any work."""


def _load(method: str):
    module, attr = METHODS[method].split(":")
    return getattr(importlib.import_module(module), attr)


@click.command("istree")
@click.option("--method", type=click.Choice(sorted(METHODS)), default="rnn-rag",
              show_default=True, help="What to verify (rnn-rag: the bit-bounded RNN that "
              "queries a regex retriever and writes the official retrieval-format CoT).")
@click.option("--n", "n", type=int, required=True, help="Number of vertices (>= 2).")
@click.option("--orders", type=click.Choice(["auto", "all", "one"]), default="auto",
              show_default=True, help="Prompt orders per edge set: all (n=6: 360,360 "
              "inputs, about 5 CPU-minutes), one (sorted), auto (all when <= 100,000 inputs, "
              "i.e. n <= 5; else sorted + reversed).  Edge sets are enumerated up to 60,000 of "
              "them (n <= 7).")
@click.option("--samples", type=int, default=None,
              help="Graphs sampled from EACH official family (binary, random), n >= 4 "
              "[default: 100 for n <= 256, else 20 (about 1 s per graph at n = 1024)].")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON: task, method, n, "
              "verified, enumerated, inputs_checked, failures, peak_state_bits, "
              "max_cot_tokens, retrievals, seconds (and a few extra keys).")
def istree(method: str, n: int, orders: str, samples: int | None, seed: int, jobs: int,
           as_json: bool) -> None:
    """Verify an IsTree method: every transcript parsed token for token, verdict vs networkx.

    For small n every set of n-1 distinct non-loop edges is checked (and every prompt order
    where feasible; the output says what was enumerated); large n is checked on samples from
    both official families (correct samplers) and adversarial graphs.  'verified' is true only
    when every edge set was enumerated and nothing failed; sampled-only runs say 'passed'.
    Exit 0 when nothing failed, 1 on any failure.
    """
    if n < 2:
        raise click.BadParameter(f"must be >= 2, got {n}", param_hint="--n")
    if n > 1 << 16:
        raise click.BadParameter(f"must be <= 65536, got {n}", param_hint="--n")
    if samples is None:
        samples = 100 if n <= 256 else 20
    if samples < 0:
        raise click.BadParameter("must be >= 0", param_hint="--samples")
    if seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--seed")
    if jobs < 1:
        raise click.BadParameter("must be >= 1", param_hint="--jobs")
    from tqdm import tqdm

    run = _load(method)
    with tqdm(desc=f"istree {method} n={n}", unit="graph", file=sys.stderr,
              disable=None, leave=False) as bar:
        try:  # a method refuses infeasible plans with ValueError before doing any work
            out = run(n, orders=orders, samples=samples, seed=seed, progress=bar.update,
                      jobs=jobs)
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    if as_json:
        dump_json(out)
    else:
        status = ("VERIFIED" if out["verified"] else
                  "PASSED (sampled only, not a proof)" if out["passed"] else "FAILED")
        click.echo(f"IsTree n={n} method={method}: {status}")
        click.echo(f"  enumerated: {out['enumerated']}")
        for key in ("inputs_checked", "failures", "peak_state_bits", "declared_state_bits",
                    "max_cot_tokens", "retrievals", "seconds"):
            click.echo(f"  {key}: {out[key]}")
        for f in out["failure_examples"][:3]:
            click.echo(f"  failure: {f}")
    if out["failures"]:
        first = out["failure_examples"][0]
        fail(f"{out['failures']} of {out['inputs_checked']} inputs failed; first: "
             f"{first['reason']} on edges {first['edges']}")

"""``rnngap run``: run a method on one input and print its transcript.

``rnngap run istree`` runs the bit-bounded RNN + regex-retrieval IsTree machine on one graph;
``rnngap run tm`` runs a Turing machine compiled to the same RNN + retrieval scheme.
"""

from __future__ import annotations

import re
import sys

import click

from rnngap.commands._common import dump_json, fail

_EDGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_edges(text: str, n: int) -> list[tuple[int, int]]:
    """Parse ``"0-1,1-2,..."``; raise click.BadParameter on any malformed or invalid edge."""
    edges: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    items = [s for s in text.split(",")] if text.strip() else []
    for item in items:
        m = _EDGE.match(item)
        if not m:
            raise click.BadParameter(f"malformed edge {item.strip()!r} (want u-v)",
                                     param_hint="--edges")
        u, v = int(m.group(1)), int(m.group(2))
        if u >= n or v >= n:
            raise click.BadParameter(f"vertex out of range in {u}-{v} (vertices are 0..{n - 1})",
                                     param_hint="--edges")
        if u == v:
            raise click.BadParameter(f"self-loop {u}-{v}", param_hint="--edges")
        key = (max(u, v), min(u, v))
        if key in seen:
            raise click.BadParameter(f"duplicate edge {u}-{v}", param_hint="--edges")
        seen.add(key)
        edges.append((u, v))
    if len(edges) != n - 1:
        raise click.BadParameter(f"got {len(edges)} edges, IsTree_n needs n-1 = {n - 1}",
                                 param_hint="--edges")
    return edges


@click.group("run")
def run() -> None:
    """Run one method on one input and print the transcript it writes."""


@run.command("istree")
@click.option("--method", type=click.Choice(["rnn-rag"]), default="rnn-rag", show_default=True,
              help="rnn-rag: O(log n)-bit RNN writing the official retrieval-format CoT.")
@click.option("--n", "n", type=int, required=True, help="Number of vertices (>= 2).")
@click.option("--edges", "edges_text", default=None,
              help='Edges "u-v,u-v,..." in prompt order (exactly n-1, distinct, no loops).')
@click.option("--seed", type=int, default=None, help="Sample the graph with this seed instead.")
@click.option("--family", type=click.Choice(["binary", "random"]), default="random",
              show_default=True, help="Official family used with --seed (correct sampler).")
@click.option("--no-retrieval", is_flag=True,
              help="Switch the retrieval oracle off (every retrieval answers [FAILED]).")
@click.option("--contrast", is_flag=True, help="Instead of one run: search all graphs on n "
              "vertices (n <= 7) for a tree and a non-tree that the machine without retrieval "
              "cannot tell apart, and show both verdicts with and without retrieval.")
@click.option("--scaling", is_flag=True, help="Instead of one run: one graph per official "
              "family for n = 16, 32, ..., N; print declared and peak state bits, CoT length, "
              "retrievals, seconds and whether the verdict was right.")
@click.option("--quiet", is_flag=True, help="Summary only, no transcript.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON.")
def istree(method: str, n: int, edges_text: str | None, seed: int | None, family: str,
           no_retrieval: bool, contrast: bool, scaling: bool, quiet: bool,
           as_json: bool) -> None:
    """Run the IsTree machine on one graph: transcript, verdict, peak state bits, CoT length."""
    if n < 2 or n > 1 << 16:
        raise click.BadParameter(f"must be in 2..65536, got {n}", param_hint="--n")
    if seed is not None and seed < 0:
        raise click.BadParameter(f"must be >= 0, got {seed}", param_hint="--seed")
    if scaling:
        _scaling(n, seed or 0, as_json)
        return
    if contrast:
        if n > 7:
            raise click.BadParameter("--contrast enumerates graphs: use n <= 7",
                                     param_hint="--n")
        from rnngap.verify.istree_rag import fool_no_retrieval

        out = fool_no_retrieval(max(n, 3))
        if as_json:
            dump_json(out)
            return
        click.echo(f"Without retrieval the machine reaches the same state after the prompt on\n"
                   f"  tree     {out['tree']}\n  non-tree {out['non_tree']}\n"
                   f"so it writes the same CoT (same: {out['same_cot_without_retrieval']}) and "
                   f"verdicts {out['verdicts_without_retrieval']} (truth {out['truth']}).\n"
                   f"With retrieval its verdicts are {out['verdicts_with_retrieval']}.")
        return
    if edges_text is not None and seed is not None:
        raise click.UsageError("give either --edges or --seed, not both")
    import numpy as np

    from rnngap.constructions.rnn_rag import run_istree
    from rnngap.tasks import istree as T

    if edges_text is not None:
        edges = np.array(parse_edges(edges_text, n), dtype=np.int64).reshape(-1, 2)
        source = "given edges"
    else:
        if n < 4:
            raise click.BadParameter("sampling needs n >= 4 (or give --edges)",
                                     param_hint="--n")
        (edges,), _ = T.sample_graphs(n, 1, family, seed=seed or 0)
        source = f"{family} sample, seed {seed or 0}"
    tr = run_istree(n, edges, retrieval=not no_retrieval)
    truth = T.is_tree(n, edges)
    out = {"n": n, "method": method, "source": source, "retrieval": not no_retrieval,
           "verdict": tr.verdict, "truth": truth, "correct": tr.verdict == truth,
           "peak_state_bits": tr.peak_bits, "declared_state_bits": tr.declared_bits,
           "cot_tokens": tr.cot_len, "retrievals": tr.retrievals,
           "edges": edges.tolist()}
    if not quiet:
        out["transcript"] = T.render(tr.tokens)
    if as_json:
        dump_json(out)
    else:
        if not quiet:
            click.echo(out["transcript"])
        click.echo(f"verdict: {tr.verdict} (truth {truth}{'' if out['correct'] else ', WRONG'})"
                   f"  [{source}{'' if not no_retrieval else ', retrieval OFF'}]")
        click.echo(f"peak state bits: {tr.peak_bits} (declared {tr.declared_bits})  "
                   f"CoT tokens: {tr.cot_len}  retrievals: {tr.retrievals}")
    if not out["correct"] and not no_retrieval:
        fail("the machine answered wrongly (a bug)")


def _scaling(n_max: int, seed: int, as_json: bool) -> None:
    """``run istree --scaling``: state bits and costs for n = 16, 32, ..., n_max."""
    import time

    from rnngap.commands._common import table
    from rnngap.constructions.rnn_rag import run_istree
    from rnngap.tasks import istree as T

    if n_max < 16:
        raise click.BadParameter("--scaling needs n >= 16", param_hint="--n")
    rows = []
    n = 16
    while n <= n_max:
        for fam in T.FAMILIES:
            (edges,), (label,) = T.sample_graphs(n, 1, fam, seed=seed)
            t0 = time.perf_counter()
            tr = run_istree(n, edges)
            rows.append({"n": n, "family": fam, "declared_bits": tr.declared_bits,
                         "peak_bits": tr.peak_bits, "cot_tokens": tr.cot_len,
                         "retrievals": tr.retrievals, "correct": tr.verdict == bool(label),
                         "seconds": round(time.perf_counter() - t0, 3)})
        n *= 2
    if as_json:
        dump_json(rows)
    else:
        click.echo(table(rows, list(rows[0])))
    if not all(r["correct"] for r in rows):
        fail("a verdict was wrong (a bug)")


@run.command("tm")
@click.option("--machine", "machine_name", default=None,
              help="A built-in machine (see --list) ...")
@click.option("--file", "machine_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="... or a machine file in the text format below.")
@click.option("--input", "input_text", default="", help="The input string (symbols, no spaces).")
@click.option("--list", "list_machines", is_flag=True, help="List the built-in machines.")
@click.option("--check-up-to", "check_len", type=int, default=None,
              help="Instead of one run: compare the compiled RNN with the direct simulator "
              "(and, for built-ins, with a Python specification) on EVERY input of length "
              "<= this.  Exit 1 on any disagreement.")
@click.option("--no-retrieval", is_flag=True, help="Switch the retrieval oracle off.")
@click.option("--quiet", is_flag=True, help="Summary only, no transcript.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON.")
def tm(machine_name: str | None, machine_file: str | None, input_text: str, list_machines: bool,
       check_len: int | None, no_retrieval: bool, quiet: bool, as_json: bool) -> None:
    """Run a Turing machine as an O(log T)-bit RNN that retrieves each cell's last write.

    The transcript shows, per step, the state, the query for the head cell, the retrieved
    symbol and the write record; it is compared with a direct simulation.

    \b
    Machine file format (one item per line, '#' starts a comment):
      name: NAME      doc: ONE LINE      input: 0 1      tape: 0 1 A B (optional)
      start: STATE    accept: STATE      reject: STATE
      STATES SYMBOLS -> NEW_STATE WRITE MOVE     e.g.  scan 0,1 -> scan = R
    Symbols are single characters; '_' is blank, '>' the left-end marker in cell 0; the input
    sits in cells 1..k; WRITE '=' keeps the symbol; MOVE is L, R or N.  Every (non-halting
    state, tape symbol) pair must have a transition.
    """
    from rnngap.constructions import turing as TM

    if list_machines:
        for name, m in TM.MACHINES.items():
            click.echo(f"{name:12s} {m.doc}")
        return
    if (machine_name is None) == (machine_file is None):
        raise click.UsageError("give exactly one of --machine NAME or --file PATH")
    try:
        if machine_file is not None:
            with open(machine_file, encoding="utf-8") as fh:
                machine = TM.parse_machine(fh.read())
        elif machine_name in TM.MACHINES:
            machine = TM.MACHINES[machine_name]
        else:
            raise click.BadParameter(f"unknown machine {machine_name!r}; known: "
                                     f"{', '.join(TM.MACHINES)}", param_hint="--machine")
        if check_len is None:
            machine.check_input(input_text)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if check_len is not None:
        _check_tm(TM, machine, check_len, as_json)
        return
    res = TM.run_compiled(machine, input_text, retrieval=not no_retrieval)
    ref = TM.simulate(machine, input_text)
    agree = res.outcome == ref.outcome and res.tape == ref.tape
    out = {"machine": machine.name, "input": input_text, "retrieval": not no_retrieval,
           "outcome": res.outcome, "output": res.tape, "steps": res.steps,
           "direct_outcome": ref.outcome, "direct_output": ref.tape, "agree": agree,
           "peak_state_bits": res.peak_bits, "declared_state_bits": res.declared_bits,
           "cot_tokens": res.cot_len, "retrievals": res.retrievals}
    if not quiet:
        out["transcript"] = res.transcript
    if as_json:
        dump_json(out)
    else:
        if not quiet:
            click.echo(res.transcript)
        click.echo(f"{machine.name}({input_text!r}): {res.outcome}, tape {res.tape!r}, "
                   f"{res.steps} steps; direct simulator: {ref.outcome}, {ref.tape!r} "
                   f"({'agree' if agree else 'DISAGREE'})")
        click.echo(f"peak state bits: {res.peak_bits} (declared {res.declared_bits})  "
                   f"CoT tokens: {res.cot_len}  retrievals: {res.retrievals}")
    if not agree and not no_retrieval:
        fail("the compiled machine disagrees with the direct simulator (a bug)")


def _check_tm(TM, machine, max_len: int, as_json: bool) -> None:
    """``run tm --check-up-to``: every input up to ``max_len``, compiled vs direct vs spec."""
    if not 0 <= max_len <= 12:
        raise click.BadParameter("must be in 0..12", param_hint="--check-up-to")
    from tqdm import tqdm

    from rnngap.constructions.turing_machines import SPECS

    spec = SPECS.get(machine.name) if TM.MACHINES.get(machine.name) is machine else None
    total = sum(len(machine.input_alphabet) ** k for k in range(max_len + 1))
    with tqdm(total=total, desc=f"tm {machine.name}", file=sys.stderr,
              disable=None, leave=False) as bar:
        out = TM.check_machine(machine, max_len, spec, bar.update)
    if as_json:
        dump_json(out)
    else:
        click.echo(f"{machine.name}: {out['inputs']} inputs of length <= {max_len}; "
                   f"compiled vs direct disagreements: {out['disagreements']}; "
                   f"specification {'failures: ' + str(out['spec_failures']) if spec else 'n/a'}")
        click.echo(f"  max steps {out['max_steps']}, max CoT tokens {out['max_cot_tokens']}, "
                   f"peak state bits {out['peak_state_bits']} "
                   f"(declared {out['declared_state_bits']})")
    if not out["agree"]:
        fail(f"{machine.name}: first bad input {out['examples'][0]}")

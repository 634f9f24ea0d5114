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
@click.option("--method", "--model", "method",
              type=click.Choice(["rnn-rag", "hybrid", "hybrid-fsm", "transformer"]),
              default="rnn-rag", show_default=True,
              help="rnn-rag: O(log n)-bit RNN writing the official retrieval-format CoT, a regex "
              "retriever answering its queries; hybrid: two linear RNN layers then ONE "
              "attention layer + MLP (Definition 5.5, p-bit arithmetic) writing a union-find "
              "CoT; hybrid-fsm: O(log n)-bit (non-linear) recurrent part plus ONE hand-set "
              "attention layer doing every lookup of a union-find CoT; transformer: a "
              "constant-size hand-set Transformer (p-bit arithmetic) writing the official "
              "O(n)-token cot format.")
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
    """Run the IsTree machine on one graph: transcript, verdict, peak state bits, CoT length.

    Cost grows about quadratically with n.  rnn-rag: ~0.15 s at n = 256, ~1 s at n = 1024,
    ~4-12 s at n = 4096, roughly an hour at n = 65536.  At n = 256: transformer a few seconds,
    hybrid-fsm ~2 s, hybrid a few minutes (a note on stderr gives the estimate when long).
    --contrast and --scaling replace the single run: they take no --edges or
    --no-retrieval, --contrast takes no --seed or --family, and they exclude each other.
    """
    if n < 2 or n > 1 << 16:
        raise click.BadParameter(f"must be in 2..65536, got {n}", param_hint="--n")
    if seed is not None and seed < 0:
        raise click.BadParameter(f"must be >= 0, got {seed}", param_hint="--seed")
    if contrast and scaling:
        raise click.UsageError("--contrast and --scaling are two different runs: give one")
    mode = "--contrast" if contrast else "--scaling" if scaling else None
    if mode:
        src = click.get_current_context().get_parameter_source("family")
        ignored = [flag for flag, given in (
            ("--edges", edges_text is not None), ("--no-retrieval", no_retrieval),
            ("--seed", contrast and seed is not None),
            ("--family", src is not None and src.name == "COMMANDLINE")) if given]
        if ignored:
            raise click.UsageError(f"{mode} does not use {', '.join(ignored)} "
                                   f"(see rnngap run istree --help)")
    if method != "rnn-rag" and (mode or no_retrieval):
        raise click.UsageError(f"--method {method} has no retriever: it takes no "
                               f"{mode or '--no-retrieval'}")
    from rnngap.verify.istree.methods import METHODS

    if n > METHODS[method].max_n:
        raise click.BadParameter(f"must be <= {METHODS[method].max_n} for --method {method}, "
                                 f"got {n}",
                                 param_hint="--n")
    if scaling:
        _scaling(n, seed or 0, as_json)
        return
    if contrast:
        if not 4 <= n <= 7:
            raise click.BadParameter("--contrast enumerates graphs on n vertices: use "
                                     "4 <= n <= 7 (for n < 4 every such edge set is a tree)",
                                     param_hint="--n")
        from rnngap.verify.istree.rnn_rag import fool_no_retrieval

        out = fool_no_retrieval(n)
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
    fam_src = click.get_current_context().get_parameter_source("family")
    if edges_text is not None and fam_src is not None and fam_src.name == "COMMANDLINE":
        raise click.UsageError("--family picks the sampler for --seed; it does nothing with "
                               "--edges: drop one of them")
    import torch

    torch.set_num_threads(1)  # many small tensor ops: one thread is much faster
    import numpy as np

    from rnngap.constructions.istree.rnn_rag import run_istree
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
    _warn_cost(n, [n], method)
    if method in ("transformer", "hybrid"):
        _run_decoder(method, n, edges, source, quiet, as_json)
        return
    extra: dict = {}
    if method == "hybrid-fsm":
        from rnngap.constructions.istree import fsm_hybrid as H

        tr = H.run(n, edges)
        extra = {"attention_lookups": tr.lookups, "lookup_mismatches": tr.mismatches,
                 "precision_bits": H.precision_for(n)}
        retrievals = tr.lookups
    else:
        tr = run_istree(n, edges, retrieval=not no_retrieval)
        retrievals = tr.retrievals
    truth = T.is_tree(n, edges)
    out = {"n": n, "method": method, "source": source,
           "retrieval": method == "rnn-rag" and not no_retrieval,
           "verdict": tr.verdict, "truth": truth, "correct": tr.verdict == truth,
           "peak_state_bits": tr.peak_bits, "declared_state_bits": tr.declared_bits,
           "cot_tokens": tr.cot_len, "retrievals": retrievals, **extra,
           "edges": edges.tolist()}
    lookups = (f"attention lookups: {tr.lookups} ({tr.mismatches} differ from the exact "
               f"lookup) at p = {extra['precision_bits']} bits" if extra else
               f"retrievals: {retrievals}")
    _report(out, T.render(tr.tokens), quiet, as_json, [
        (f"verdict: {tr.verdict} (truth {truth}{'' if out['correct'] else ', WRONG'})"
        f"  [{source}{'' if not no_retrieval else ', retrieval OFF'}]"),
        (f"peak state bits: {tr.peak_bits} (declared {tr.declared_bits})  "
        f"CoT tokens: {tr.cot_len}  {lookups}")])
    if not out["correct"] and not no_retrieval:
        fail("the machine answered wrongly (a bug)")
    if extra.get("lookup_mismatches"):
        fail(f"{tr.mismatches} attention lookups differ from the exact lookup (a bug)")


def _run_decoder(method: str, n: int, edges, source: str, quiet: bool, as_json: bool) -> None:
    """``run istree --method transformer|hybrid``: decode one graph at p(n) bits, audited,
    and compare with the reference CoT (official cot format, resp. the union-find CoT)."""
    import numpy as np

    from rnngap.tasks import istree as T

    if method == "transformer":
        from rnngap.constructions.istree import transformer as X
        from rnngap.verify.istree import transformer as V

        p, net, fmt = X.precision_for(n), X.build(n).model(), "official cot format"
        state = 0
    else:
        from rnngap.constructions.istree import hybrid as X
        from rnngap.verify.istree import hybrid as V

        p, net, fmt = X.precision_for(n), X.model(n), "union-find CoT"
        state = net.backbone.state_scalars() * p
    (got,), audit = V.run_batch(n, net, [edges], p)
    want = V.reference(n, edges)
    truth = T.is_tree(n, edges)
    verdict = True if got[-1:] == [T.TRUE] else False if got[-1:] == [T.FALSE] else None
    prompt = T.prompt_tokens(n, edges)
    out = {"n": n, "method": method, "source": source, "retrieval": False,
           "verdict": verdict, "truth": truth, "correct": verdict == truth,
           "reference_cot": got == want, "cot_tokens": len(got),
           "recurrent_state_bits": state,
           "kv_cache_bits": V.kv_bits(net, len(prompt) + len(got) - 1, p), "precision_bits": p,
           "attention_rows_not_one_hot": audit.not_one_hot,
           "non_integer_residuals": audit.non_integer, "edges": np.asarray(edges).tolist()}
    _report(out, T.render(prompt + got), quiet, as_json, [
        f"verdict: {verdict} (truth {truth}{'' if out['correct'] else ', WRONG'})  [{source}]",
        (f"CoT tokens: {len(got)} ({fmt}: {'identical' if out['reference_cot'] else 'DIFFERENT'})"
        f"  recurrent state: {state} bits  KV cache at the end: {out['kv_cache_bits']} bits at "
        f"p = {p}  attention rows not one-hot: {audit.not_one_hot}")])
    if not out["correct"] or not out["reference_cot"] or audit.not_one_hot or \
            audit.non_integer:
        fail(f"the {method} construction deviated from its reference CoT (a bug)")


def _report(out: dict, transcript: str, quiet: bool, as_json: bool, lines: list[str]) -> None:
    """Print one run: JSON only, or the transcript (unless quiet) and the summary lines."""
    if not quiet:
        out["transcript"] = transcript
    if as_json:
        dump_json(out)
        return
    if not quiet:
        click.echo(transcript)
    for line in lines:
        click.echo(line)


def _warn_cost(n: int, sizes: list[int], method: str = "rnn-rag") -> None:
    """One note on stderr when the runs (one graph per size) will take long."""
    from rnngap.verify.istree.methods import seconds_per_graph

    single = 2.5 if method == "hybrid" else 1.0  # one graph alone: no batch to amortize over
    est = sum(single * seconds_per_graph(m, method) for m in sizes)
    if n > 4096 or est > 60:
        click.echo(f"note: n={n} takes roughly {est / 60:.0f} minute(s) on one core "
                   f"(cost grows about quadratically with n)", err=True)


def _scaling(n_max: int, seed: int, as_json: bool) -> None:
    """``run istree --scaling``: state bits and costs for n = 16, 32, ..., n_max."""
    import time

    from rnngap.commands._common import table
    from rnngap.constructions.istree.rnn_rag import run_istree
    from rnngap.tasks import istree as T

    if n_max < 16:
        raise click.BadParameter("--scaling needs n >= 16", param_hint="--n")
    rows = []
    sizes = [16 << k for k in range((n_max // 16).bit_length())]
    _warn_cost(n_max, 2 * sizes)
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


MAX_STEPS_CAP = 50_000
"""--max-steps cap: the compiled run costs about quadratically in the steps (each retrieval
scans the transcript): ~1.5 s for 5,000 steps, ~20 s for 20,000, ~2 min for 50,000."""


@run.command("tm")
@click.option("--machine", "machine_name", default=None,
              help="A built-in machine (see --list) ...")
@click.option("--file", "machine_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="... or a machine file in the text format below.")
@click.option("--input", "input_text", default=None,
              help="The input string (symbols, no spaces); required for a single run "
              "(--input '' is the empty input).")
@click.option("--list", "list_machines", is_flag=True, help="List the built-in machines.")
@click.option("--check-up-to", "check_len", type=int, default=None,
              help="Instead of one run: compare the compiled RNN with the direct simulator "
              "(and, for built-ins, with a Python specification) on EVERY input of length "
              "<= this.  Exit 1 on any disagreement.")
@click.option("--max-steps", type=int, default=None,
              help="Step limit of both simulators [default: 40 (k+3)^2 + 200 for an input of "
              f"length k]; at most {MAX_STEPS_CAP:,} when given (cost grows about quadratically: ~20 s "
              "for 20,000 steps).  A run that has not halted by then is reported as 'did not "
              "halt within N steps' with its real tape, CoT and costs up to that point.")
@click.option("--no-retrieval", is_flag=True, help="Switch the retrieval oracle off.")
@click.option("--quiet", is_flag=True, help="Summary only, no transcript.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON.")
def tm(machine_name: str | None, machine_file: str | None, input_text: str | None,
       list_machines: bool, check_len: int | None, max_steps: int | None, no_retrieval: bool,
       quiet: bool, as_json: bool) -> None:
    """Run a Turing machine as an O(log T)-bit RNN that retrieves each cell's last write.

    The transcript shows, per step, the state, the query for the head cell, the retrieved
    symbol and the write record; it is compared with a direct simulation (outcome, output
    tape and step count).  Two runs that both do not halt within the step limit agree only
    when they stop at the same limit with the same tape; the output says so.

    \b
    Machine file format (one item per line, '#' starts a comment):
      name: NAME      doc: ONE LINE      input: 0 1      tape: 0 1 A B (optional)
      start: STATE    accept: STATE      reject: STATE
      STATES SYMBOLS -> NEW_STATE WRITE MOVE     e.g.  scan 0,1 -> scan = R
    Symbols are single characters; '_' is blank, '>' the left-end marker in cell 0; the input
    sits in cells 1..k; WRITE '=' keeps the symbol; MOVE is L, R or N.  Every (non-halting
    state, tape symbol) pair must have a transition.
    """
    from rnngap.constructions.turing import compiler as TM

    if list_machines:
        if input_text is not None or check_len is not None or max_steps is not None:
            raise click.UsageError("--list takes no --input, --check-up-to or --max-steps")
        if as_json:
            dump_json([{"name": name, "doc": m.doc, "input_alphabet": list(m.input_alphabet)}
                       for name, m in TM.MACHINES.items()])
        else:
            for name, m in TM.MACHINES.items():
                click.echo(f"{name:12s} {m.doc}")
        return
    if (machine_name is None) == (machine_file is None):
        raise click.UsageError("give exactly one of --machine NAME or --file PATH")
    if max_steps is not None and not 0 <= max_steps <= MAX_STEPS_CAP:
        raise click.BadParameter(f"must be in 0..{MAX_STEPS_CAP:,}, got {max_steps}",
                                 param_hint="--max-steps")
    if check_len is not None and (input_text is not None or no_retrieval):
        raise click.UsageError("--check-up-to runs every input with retrieval on: it takes no "
                               "--input or --no-retrieval")
    if check_len is None and input_text is None:
        raise click.UsageError("give --input TEXT (--input '' for the empty input), or "
                               "--check-up-to N")
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
    except (ValueError, UnicodeDecodeError) as err:
        raise click.UsageError(str(err)) from None
    if check_len is not None:
        _check_tm(TM, machine, check_len, max_steps, as_json)
        return
    assert input_text is not None
    limit = machine.step_bound(len(input_text)) if max_steps is None else max_steps
    if limit > 10_000:
        click.echo(f"note: step limit {limit:,}: a machine that runs that long takes about "
                   f"{max(1, round(22 * (limit / 20_000) ** 2))} s", err=True)
    try:
        res = TM.run_compiled(machine, input_text, retrieval=not no_retrieval,
                              max_steps=limit)
        ref = TM.simulate(machine, input_text, max_steps=limit)
    except (RuntimeError, ValueError, KeyError) as err:  # not a step-limit stop: a real error
        fail(f"the run failed (not a step-limit stop): {type(err).__name__}: {err}")
        return
    agree = (res.outcome, res.tape, res.steps) == (ref.outcome, ref.tape, ref.steps)
    both_cut = agree and res.outcome == "timeout"
    out = {"machine": machine.name, "input": input_text, "retrieval": not no_retrieval,
           "max_steps": limit, "halted": res.outcome != "timeout",
           "outcome": res.outcome, "output": res.tape, "steps": res.steps,
           "direct_outcome": ref.outcome, "direct_output": ref.tape,
           "direct_steps": ref.steps, "agree": agree,
           "agree_only_up_to_step_limit": both_cut,
           "peak_state_bits": res.peak_bits, "declared_state_bits": res.declared_bits,
           "cot_tokens": res.cot_len, "retrievals": res.retrievals}
    if not quiet:
        out["transcript"] = res.transcript
    if as_json:
        dump_json(out)
    else:
        if not quiet:
            click.echo(res.transcript)

        def says(o: str, tape: str, steps: int) -> str:
            if o == "timeout":
                return f"did not halt within {limit} steps (tape then {tape!r})"
            return f"{o}, tape {tape!r}, {steps} steps"

        verdict = ("agree only up to the step limit: both did not halt within "
                   f"{limit} steps, same tape" if both_cut else
                   "agree" if agree else "DISAGREE")
        click.echo(f"{machine.name}({input_text!r}): {says(res.outcome, res.tape, res.steps)}; "
                   f"direct simulator: {says(ref.outcome, ref.tape, ref.steps)} ({verdict})")
        click.echo(f"peak state bits: {res.peak_bits} (declared {res.declared_bits})  "
                   f"CoT tokens: {res.cot_len}  retrievals: {res.retrievals}"
                   f"{'  (up to the step limit)' if res.outcome == 'timeout' else ''}")
    if not agree and not no_retrieval:
        fail("the compiled machine disagrees with the direct simulator (a bug)")


def _check_tm(TM, machine, max_len: int, max_steps: int | None, as_json: bool) -> None:
    """``run tm --check-up-to``: every input up to ``max_len``, compiled vs direct vs spec."""
    if not 0 <= max_len <= 12:
        raise click.BadParameter("must be in 0..12", param_hint="--check-up-to")
    from tqdm import tqdm

    from rnngap.constructions.turing.machines import SPECS

    spec = SPECS.get(machine.name) if TM.MACHINES.get(machine.name) is machine else None
    total = sum(len(machine.input_alphabet) ** k for k in range(max_len + 1))
    with tqdm(total=total, desc=f"tm {machine.name}", file=sys.stderr,
              disable=None, leave=False) as bar:
        try:
            out = TM.check_machine(machine, max_len, spec, bar.update, max_steps=max_steps)
        except (RuntimeError, ValueError, KeyError) as err:
            fail(f"a run failed (not a step-limit stop): {type(err).__name__}: {err}")
            return
    if as_json:
        dump_json(out)
    else:
        limit = (f"{max_steps}" if max_steps is not None else "40 (k+3)^2 + 200")
        click.echo(f"{machine.name}: {out['inputs']} inputs of length <= {max_len}; "
                   f"compiled vs direct disagreements: {out['disagreements']}; "
                   f"specification {'failures: ' + str(out['spec_failures']) if spec else 'n/a'}")
        if out["not_halted"]:
            click.echo(f"  {out['not_halted']} input(s): BOTH did not halt within the step "
                       f"limit ({limit}) with the same tape -- counted as agreeing only up to "
                       f"that limit" + (f"; specification not checked on "
                                        f"{out['spec_skipped']}" if out["spec_skipped"] else ""))
        click.echo(f"  max steps {out['max_steps']}, max CoT tokens {out['max_cot_tokens']}, "
                   f"peak state bits {out['peak_state_bits']} "
                   f"(declared {out['declared_state_bits']})")
    if not out["agree"]:
        fail(f"{machine.name}: first bad input {out['examples'][0]}")

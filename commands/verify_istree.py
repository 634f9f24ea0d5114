"""``rnngap verify istree``: check an IsTree method on every small graph and on samples beyond.

Methods plug in as records of :mod:`rnngap.verify.istree.methods` (verifier, helper, max n, cost
model, parallel or not); the verifier is imported only when used.
"""

from __future__ import annotations

import sys

import click

from rnngap.commands._common import dump_json, fail, max_memory_option
from rnngap.verify.istree.methods import METHODS, default_samples, seconds_per_graph

MAX_SAMPLES = 10_000
"""--samples cap (per family): at n = 1024 one graph takes about 1 s, at n = 4096 about 4-12 s."""


@click.command("istree")
@click.option("--method", "--model", "method", type=click.Choice([*METHODS, "all"]),
              default="rnn-rag", show_default=True, help="What to verify (rnn-rag: the "
              "bit-bounded RNN that queries a regex retriever and writes the official "
              "retrieval-format CoT; hybrid-fsm: a bit-bounded (non-linear) recurrent part plus "
              "ONE hand-set softmax attention layer that does every lookup of a union-find CoT, "
              "run at p bits, no retrieval oracle; hybrid: Definition 5.5, "
              "two LINEAR RNN layers then ONE attention layer + MLP writing a union-find CoT, "
              "run at p bits; transformer: a constant-size hand-set Transformer (6 layers) "
              "writing the official O(n) cot format, run at p bits; all: every method on the "
              "same inputs, then one comparison table).")
@click.option("--n", "n", type=int, required=True, help="Number of vertices (>= 2).")
@click.option("--orders", type=click.Choice(["auto", "all", "one"]), default="auto",
              show_default=True, help="Prompt orders per edge set: all (n=6: 360,360 "
              "inputs, about 5 CPU-minutes), one (sorted), auto (all when <= 100,000 inputs, "
              "i.e. n <= 5; else sorted + reversed).  Edge sets are enumerated up to 60,000 of "
              "them (n <= 7); 'all' and 'one' are refused beyond that.  Only 'all' (or auto "
              "at n <= 5) checks every input and can give VERIFIED.")
@click.option("--samples", type=int, default=None,
              help="Graphs sampled from EACH official family (binary, random); needs n >= 4; "
              f"at most {MAX_SAMPLES:,} [default: 100 for n <= 256, else 20; for hybrid, "
              "hybrid-fsm and transformer capped so the samples take about 2 minutes].  "
              "rnn-rag cost per graph grows about quadratically: ~0.15 s at n = 256, ~1 s at "
              "n = 1024, ~4-12 s at n = 4096, roughly an hour at n = 65536; at n = 256 the "
              "hybrid takes ~10 s, hybrid-fsm ~2 s, the transformer ~2 s per graph (batched).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Worker processes "
              "(rnn-rag, hybrid, transformer; hybrid-fsm runs in one process).")
@max_memory_option
@click.option("--json", "as_json", is_flag=True, help="Print only JSON: task, method, n, "
              "verified, enumerated, inputs_checked, failures, peak_state_bits, "
              "max_cot_tokens, retrievals, seconds (and a few extra keys).")
def istree(method: str, n: int, orders: str, samples: int | None, seed: int, jobs: int,
           as_json: bool) -> None:
    """Verify an IsTree method: every transcript checked token for token, verdict vs networkx.

    An input is a prompt: n-1 distinct non-loop edges in some order, each written u > v as
    the official format does (so orientation is not enumerated).  For small n every edge set
    is checked, in every prompt order where feasible (the output says exactly what was
    enumerated); large n is checked on samples from both official families (correct
    samplers) and adversarial graphs.  'exhaustive' is true when EVERY input at that n was
    checked -- every edge set in every prompt order --; 'verified' when, in addition,
    nothing failed (no input, no certificate, no audit); otherwise a run with no failure
    says 'passed' (not a proof).  Exit 0 when nothing failed, 1 on any failure.

    \b
    peak_state_bits / declared_state_bits: the fixed-size recurrent state (0 for the
    transformer, which has none); kv_bits: the attention KV cache at the end of the longest
    transcript (transformer, hybrid, hybrid-fsm).  --method all adds a table; its JSON has
    task, n, enumerated, verified, passed, failures (summed), table and verdicts.
    """
    if n < 2:
        raise click.BadParameter(f"must be >= 2, got {n}", param_hint="--n")
    methods = list(METHODS) if method == "all" else [method]
    for m in methods:
        if n > METHODS[m].max_n:
            raise click.BadParameter(f"must be <= {METHODS[m].max_n} for --method {m}, got {n}",
                                     param_hint="--n")
    if samples is not None and samples < 0:
        raise click.BadParameter("must be >= 0", param_hint="--samples")
    if samples is not None and samples > MAX_SAMPLES:
        raise click.BadParameter(f"must be <= {MAX_SAMPLES:,} (per family), got {samples}",
                                 param_hint="--samples")
    if samples and n < 4:
        raise click.BadParameter(f"the official families need n >= 4, so no graph can be "
                                 f"sampled at n={n} (every input is enumerated there); drop "
                                 f"--samples", param_hint="--samples")
    if samples is None:
        samples = default_samples(n, methods)
    if seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--seed")
    if jobs < 1:
        raise click.BadParameter("must be >= 1", param_hint="--jobs")
    from tqdm import tqdm

    if n >= 4:
        graphs = 2 * samples + 9  # both families, plus the 9 adversarial graphs
    else:
        graphs = 0
    try:
        from rnngap.verify.istree.rnn_rag import enumeration_plan

        graphs += enumeration_plan(n, orders)[1]
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    est = sum(graphs * seconds_per_graph(n, m) / (jobs if METHODS[m].parallel else 1)
              for m in methods)
    if est > 60:
        click.echo(f"note: {graphs} inputs at n={n} ({', '.join(methods)}): expect roughly "
                   f"{est / 60:.0f} minutes or more (progress on stderr when it is a "
                   f"terminal)", err=True)
    import torch

    torch.set_num_threads(1)  # many small tensor ops: one thread is much faster
    outs = []
    for m in methods:
        with tqdm(desc=f"istree {m} n={n}", unit="graph", file=sys.stderr,
                  disable=None, leave=False) as bar:
            try:  # a method refuses infeasible plans with ValueError before doing any work
                outs.append(METHODS[m].load()(n, orders=orders, samples=samples, seed=seed,
                                     progress=bar.update, jobs=jobs))
            except ValueError as err:
                raise click.UsageError(str(err)) from None
            except RuntimeError as err:  # e.g. a --jobs worker's network is not the certified one
                fail(f"{m}: {err}")
    if method == "all":
        _compare(n, outs, as_json)
        return
    out = outs[0]
    if as_json:
        dump_json(out)
    else:
        status = ("VERIFIED (every input checked)" if out["verified"] else
                  "PASSED (not every input was checked: not a proof)" if out["passed"]
                  else "FAILED")
        click.echo(f"IsTree n={n} method={method}: {status}")
        click.echo(f"  enumerated: {out['enumerated']}")
        for key in ("inputs_checked", "failures", "peak_state_bits", "declared_state_bits",
                    "kv_bits", "precision_bits", "max_cot_tokens", "retrievals", "seconds"):
            if key in out:
                click.echo(f"  {key}: {out[key]}")
        for f in out["failure_examples"][:3]:
            click.echo(f"  failure: {f}")
    if out["failures"]:
        _fail(out)


def _fail(out: dict) -> None:
    """Exit 1 with one line: failing inputs counted apart from certificate / audit failures."""
    ex = out["failure_examples"]
    inputs = [f for f in ex if f["where"] not in ("certificates", "audit")]
    other = [f for f in ex if f["where"] in ("certificates", "audit")]
    n_inputs = out.get("input_failures", len(inputs))
    first = (inputs or other)[0]
    fail(f"{out['method']}: {n_inputs} of {out['inputs_checked']} inputs failed"
         + "".join(f"; {f['where']}: {f['reason']}" for f in other)
         + (f"; first: {first['reason']} on edges {first['edges']}" if inputs else ""))


def comparison_rows(outs: list[dict]) -> list[dict]:
    """One row per method verdict: what the three IsTree methods cost side by side."""
    rows = []
    for o in outs:
        m = o["method"]
        rows.append({
            "method": m,
            "status": "VERIFIED" if o["verified"] else "passed" if o["passed"] else "FAILED",
            "inputs": o["inputs_checked"],
            "max_cot_tokens": o["max_cot_tokens"],
            "recurrent_state_bits": o["peak_state_bits"],
            "kv_cache_bits": o.get("kv_bits", 0),
            "precision_bits": o.get("precision_bits", "integers"),
            "lookups": o["retrievals"] if m in ("rnn-rag", "hybrid-fsm") else "every step",
            "helper": METHODS[m].helper,
            "seconds": o["seconds"]})
    return rows


def _compare(n: int, outs: list[dict], as_json: bool) -> None:
    from rnngap.commands._common import table

    rows = comparison_rows(outs)
    if as_json:
        dump_json({"task": "istree", "n": n, "enumerated": outs[0]["enumerated"],
                   "verified": all(o["verified"] for o in outs),
                   "passed": all(o["passed"] for o in outs),
                   "failures": sum(o["failures"] for o in outs), "table": rows,
                   "verdicts": outs})
    else:
        click.echo(f"IsTree n={n}, the same inputs for each method: {outs[0]['enumerated']}")
        click.echo("state/KV bits: largest over the inputs, at the end of the transcript; "
                   "rnn-rag also re-reads the context through its retriever (not counted)")
        click.echo(table(rows, ["method", "status", "inputs", "max_cot_tokens",
                                "recurrent_state_bits", "kv_cache_bits", "precision_bits",
                                "lookups", "helper", "seconds"]))
    bad = [o for o in outs if o["failures"]]
    if bad:
        _fail(bad[0])

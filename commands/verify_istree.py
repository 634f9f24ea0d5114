"""``rnngap verify istree``: check an IsTree method on every small graph and on samples beyond.

Methods plug in through ``METHODS`` (name -> "module:function" returning the verdict dict of
:func:`rnngap.verify.istree_rag.verify_rnn_rag`), imported only when used.
"""

from __future__ import annotations

import importlib
import sys

import click

from rnngap.commands._common import dump_json, fail

METHODS: dict[str, str] = {"rnn-rag": "rnngap.verify.istree_rag:verify_rnn_rag",
                           "hybrid": "rnngap.verify.hybrid_istree:verify_for_cli"}
MAX_SAMPLES = 10_000
"""--samples cap (per family): at n = 1024 one graph takes about 1 s, at n = 4096 about 4-12 s."""


def seconds_per_graph(n: int) -> float:
    """Rough cost of one rnn-rag run at n (measured on one core: ~1.2 s at n = 1024, growing
    about quadratically: ~12 s at n = 4096 for the binary family, ~1 h at n = 65536)."""
    return max(1e-3, 1.2 * (n / 1024) ** 2)
"""method -> "module:callable"; the callable takes (n, orders=, samples=, seed=, progress=,
jobs=), returns a dict with the keys listed in ``istree --help``, and raises ValueError (shown
as a usage error) for a plan it refuses before doing any work."""


def _load(method: str):
    module, attr = METHODS[method].split(":")
    return getattr(importlib.import_module(module), attr)


@click.command("istree")
@click.option("--method", type=click.Choice(sorted(METHODS)), default="rnn-rag",
              show_default=True, help="What to verify (rnn-rag: the bit-bounded RNN that "
              "queries a regex retriever and writes the official retrieval-format CoT; hybrid: "
              "a bit-bounded recurrent part plus ONE hand-set softmax attention layer that does "
              "every lookup of a union-find CoT, run at p bits, no retrieval oracle).")
@click.option("--n", "n", type=int, required=True, help="Number of vertices (>= 2).")
@click.option("--orders", type=click.Choice(["auto", "all", "one"]), default="auto",
              show_default=True, help="Prompt orders per edge set: all (n=6: 360,360 "
              "inputs, about 5 CPU-minutes), one (sorted), auto (all when <= 100,000 inputs, "
              "i.e. n <= 5; else sorted + reversed).  Edge sets are enumerated up to 60,000 of "
              "them (n <= 7); 'all' and 'one' are refused beyond that.  Only 'all' (or auto "
              "at n <= 5) checks every input and can give VERIFIED.")
@click.option("--samples", type=int, default=None,
              help="Graphs sampled from EACH official family (binary, random); needs n >= 4; "
              f"at most {MAX_SAMPLES:,} [default: 100 for n <= 256, else 20].  Cost per "
              "graph grows about quadratically: ~0.15 s at n = 256, ~1 s at n = 1024, ~4-12 s "
              "at n = 4096, roughly an hour at n = 65536.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON: task, method, n, "
              "verified, enumerated, inputs_checked, failures, peak_state_bits, "
              "max_cot_tokens, retrievals, seconds (and a few extra keys).")
def istree(method: str, n: int, orders: str, samples: int | None, seed: int, jobs: int,
           as_json: bool) -> None:
    """Verify an IsTree method: every transcript parsed token for token, verdict vs networkx.

    An input is a prompt: n-1 distinct non-loop edges in some order, each written u > v as
    the official format does (so orientation is not enumerated).  For small n every edge set
    is checked, in every prompt order where feasible (the output says exactly what was
    enumerated); large n is checked on samples from both official families (correct
    samplers) and adversarial graphs.  'verified' (and 'exhaustive') is true only when EVERY
    input at that n was checked -- every edge set in every prompt order -- and nothing
    failed; otherwise a run with no failure says 'passed' (not a proof).  Exit 0 when
    nothing failed, 1 on any failure.
    """
    if n < 2:
        raise click.BadParameter(f"must be >= 2, got {n}", param_hint="--n")
    if n > 1 << 16:
        raise click.BadParameter(f"must be <= 65536, got {n}", param_hint="--n")
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
        samples = 0 if n < 4 else 100 if n <= 256 else 20
    if seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--seed")
    if jobs < 1:
        raise click.BadParameter("must be >= 1", param_hint="--jobs")
    from tqdm import tqdm

    run = _load(method)
    if n >= 4:
        est = 2 * samples * seconds_per_graph(n) / jobs
        if est > 60:
            click.echo(f"note: {2 * samples} sampled graphs at n={n}: expect roughly "
                       f"{est / 60:.0f} minutes or more (progress on stderr when it is a "
                       f"terminal)", err=True)
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
        status = ("VERIFIED (every input checked)" if out["verified"] else
                  "PASSED (not every input was checked: not a proof)" if out["passed"]
                  else "FAILED")
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

"""``rnngap verify ar-oracle``: the RNN + associative-recall oracle on every AR input (C7)."""

from __future__ import annotations

import click

from rnngap.commands._common import dump_json, fail


@click.command(name="ar-oracle")
@click.option("--n", "n", type=int, default=6, show_default=True,
              help="AR data length (even; every input is enumerated: n <= 6 at the default "
                   "alphabet, 2,000,000 inputs at most).")
@click.option("--alphabet", type=int, help="Alphabet k (default n+1).")
@click.option("--occurrence", type=click.Choice(["first", "last", "adversarial"]),
              default="first", show_default=True,
              help="Which occurrence the oracle answers from (adversarial: every choice is run).")
@click.option("--search", type=click.Choice(["keys", "all"]), default="keys", show_default=True,
              help="keys: occurrences at key positions (an oracle for AR); all: any position.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON.")
def ar_oracle(n, alphabet, occurrence, search, as_json):
    """A bit-bounded RNN that asks an AR oracle once solves AR on EVERY input (claim C7, the
    positive side): it keeps the query token, writes [ASK] q [END], reads the oracle's answer.

    \b
    With --search keys it is exact under every occurrence rule (keys are distinct). With
    --search all it fails (exit 1, a counterexample): a value equal to the queried key can be
    the occurrence the oracle uses. The negative side, for c-gram and Counting:
      rnngap bound --task cgram --c 3 --oracle ar --state-bits 512
    """
    from rnngap.constructions.retrieval.ar_oracle import verify_ar_recall

    if alphabet is not None and alphabet < 1:
        raise click.BadParameter("must be >= 1", param_hint="--alphabet")
    try:
        rep = verify_ar_recall(n, alphabet, occurrence, search)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    out = {"task": "ar", "method": "rnn+ar-oracle", "n": n, "alphabet": rep.alphabet,
           "occurrence": occurrence, "search": search, "verified": rep.verified,
           "inputs_checked": rep.inputs, "runs": rep.runs, "failures": rep.failures,
           "declared_state_bits": rep.declared_bits, "peak_state_bits": rep.peak_bits,
           "oracle_calls": rep.oracle_calls, "example_failure": rep.example_failure,
           "seconds": rep.seconds, "enumerated": True}
    if as_json:
        dump_json(out)
    else:
        verdict = "VERIFIED" if rep.verified else "NOT VERIFIED"
        click.echo(f"{verdict}: RNN + AR oracle ({occurrence} occurrence, search {search}) on "
                   f"every AR input at n={n}, alphabet {rep.alphabet}: {rep.inputs:,} inputs, "
                   f"{rep.runs:,} runs, {rep.failures:,} wrong; state {rep.declared_bits} bits "
                   f"declared (peak {rep.peak_bits}), {rep.oracle_calls:,} oracle calls, "
                   f"{rep.seconds} s")
        if rep.example_failure:
            e = rep.example_failure
            click.echo(f"  first wrong input: data {e['data']} query {e['query']}: expected "
                       f"{e['expected']}, the oracle answered {e['oracle_answer']} "
                       f"(calls {e['calls']})")
    if not rep.verified:
        fail(f"{rep.failures} of {rep.runs} runs wrong (search {search}: the oracle can answer "
             "from a value position)")

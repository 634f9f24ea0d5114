"""``rnngap fool``: find two inputs a concrete B-bit machine cannot tell apart (birthday search)."""

from __future__ import annotations

import click

from rnngap.commands._common import dump_json, fail


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--task", type=click.Choice(["index", "ar", "counting", "cgram"]), default="index",
              show_default=True, help="cgram: with --oracle ar only.")
@click.option("--state-bits", "-B", type=int, required=True, help="B: the machine's state bits.")
@click.option("--machine", default="hash", show_default=True,
              help="prefix | hash | module:function: a transition f(state: int, token: int) -> "
                   "int; the module must be importable (run from its directory, which is added "
                   "to sys.path, or set PYTHONPATH). It is called once as f(0, 0) to check it.")
@click.option("--n", "n", type=int,
              help=f"Data length, at most {10_000:,d} (default: least n with > 2^B classes).")
@click.option("--alphabet", type=int, help="Alphabet k (default n+1, as the task's default).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-samples", type=int, default=1 << 23, show_default=True,
              help="Give up (exit 1) after this many sampled data strings (>= 1).")
@click.option("--oracle", type=click.Choice(["ar"]),
              help="Claim C7: the machine also has an associative-recall oracle. The pair is "
                   "drawn from data strings on which the oracle answers EVERY query the same.")
@click.option("--occurrence", type=click.Choice(["first", "last", "adversarial"]),
              default="first", show_default=True, help="With --oracle: the occurrence rule.")
@click.option("--search", "oracle_search", type=click.Choice(["all", "keys"]), default="all",
              show_default=True, help="With --oracle: every position, or key positions only.")
@click.option("--c", "c", type=int, default=3, show_default=True,
              help="c for c-gram retrieval (with --oracle).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def fool(task, state_bits, machine, n, alphabet, seed, max_samples, oracle, occurrence,
         oracle_search, c, as_json):
    """Birthday search for a fooling pair: two data strings with the same B-bit state after the
    data, and a query on which their correct answers differ. Same state + same query = same
    answer, so the machine is wrong on one of them. Both runs are re-checked token by token.

    \b
      rnngap fool --task index --state-bits 24
      rnngap fool --task index --state-bits 32 --machine prefix
      rnngap fool --task ar --state-bits 20 --machine mymod:step
    """
    from rnngap.verify.bounds import counts as bounds
    from rnngap.verify.bounds import fool as fl

    if state_bits < 1 or state_bits > 62:
        raise click.BadParameter("must be in [1, 62]", param_hint="--state-bits")
    if seed < 0:
        raise click.BadParameter(f"must be >= 0, got {seed}", param_hint="--seed")
    if oracle:
        _fool_oracle(task, state_bits, machine, n, alphabet, seed, max_samples, occurrence,
                     oracle_search, c, as_json)
        return
    if task == "cgram":
        raise click.BadParameter("cgram is searched with --oracle ar only", param_hint="--task")
    if n is None:
        found, _, _ = bounds.failure_length(task, state_bits, "query-last", alphabet)
        if found is None:
            raise click.UsageError("no data length forces a collision with this alphabet")
        n = found
    if n < 1 or (task == "ar" and n % 2):
        raise click.BadParameter("must be >= 1 (even for ar)", param_hint="--n")
    if n > fl.MAX_N:
        raise click.BadParameter(f"must be <= {fl.MAX_N:,d} (the search stores and replays every "
                                 f"sampled string), got {n:,d}", param_hint="--n")
    if seed < 0:
        raise click.BadParameter(f"must be >= 0, got {seed}", param_hint="--seed")
    if max_samples < 1:
        raise click.BadParameter(f"must be >= 1, got {max_samples}", param_hint="--max-samples")
    k = alphabet if alphabet is not None else n + 1
    if k < 2 or (task == "ar" and k < n // 2):
        raise click.BadParameter("alphabet too small for the task", param_hint="--alphabet")
    if task == "ar" and k > fl.MAX_AR_ALPHABET:
        raise click.BadParameter(f"must be <= {fl.MAX_AR_ALPHABET:,d} for ar (keys are drawn by "
                                 "permuting the alphabet)", param_hint="--alphabet")
    try:
        m = fl.load_machine(machine, state_bits, k)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--machine") from None
    guaranteed = bounds.exceeds(task, n, state_bits, "query-last", k)
    caveat = (f"no fooling pair is guaranteed: {task} at n = {n}, alphabet {k} has at most 2^"
              f"{state_bits} prefix classes, so a {state_bits}-bit machine may keep them all apart")
    if not guaranteed and not as_json:
        click.echo(f"warning: {caveat}", err=True)
    from tqdm import tqdm

    with tqdm(total=max_samples, unit="inputs", disable=as_json, leave=False) as bar:
        try:
            res = fl.birthday_search(task, m, n, k, seed, max_samples, progress=bar.update)
        except ValueError as exc:
            fail(str(exc))
    if res is None:
        fail(f"no fooling pair within {max_samples} samples (search is probabilistic; "
             "raise --max-samples or change --seed)" + ("" if guaranteed else f"; {caveat}"))
    if as_json:
        dump_json({**res.__dict__, "verified": True, "pair_guaranteed": guaranteed})
        return
    wrong = ([name for name, a in (("A", res.answer_a), ("B", res.answer_b)) if a != res.output]
             if res.output is not None else None)
    click.echo(f"task {task}, n = {res.n}, alphabet {res.alphabet}; machine: {res.machine}, "
               f"{res.bits} bits; found after <= {res.samples} sampled inputs (seed {seed})")
    click.echo(f"  input A: data {list(res.data_a)} + query {list(res.query)}")
    click.echo(f"  input B: data {list(res.data_b)} + query {list(res.query)}")
    click.echo(f"  run A and run B (re-run token by token): state after the data = "
               f"{res.state_after_data} for both; final state = {res.final_state} for both")
    click.echo(f"  correct answers: A -> {res.answer_a}, B -> {res.answer_b} (differ)")
    if wrong is not None:
        click.echo(f"  the machine's output rule answers {res.output} to both: wrong on "
                   f"{' and '.join(wrong)}")
    else:
        click.echo("  any output rule gives both the same answer: wrong on at least one")
    click.echo("verified: same state, same query, different correct answers")


def _fool_oracle(task, state_bits, machine, n, alphabet, seed, max_samples, rule, search, c,
                 as_json) -> None:
    """``fool --oracle ar``: a fooling pair whose oracle answers are all identical."""
    from tqdm import tqdm

    from rnngap.verify.bounds import fool as fl
    from rnngap.verify.bounds import oracle as O

    if c < 2:
        raise click.BadParameter(f"c must be >= 2, got {c}", param_hint="--c")
    if max_samples < 1:
        raise click.BadParameter(f"must be >= 1, got {max_samples}", param_hint="--max-samples")
    if task == "ar" and search == "keys":
        raise click.UsageError("with --search keys the oracle answers every AR query: no "
                               "fooling pair exists (rnngap verify ar-oracle)")
    if n is None:
        n = O.failure_length(task, state_bits, alphabet, rule, search, c)
        if n is None:
            raise click.UsageError(f"no family length found for {task} (c-gram needs c >= 3)")
    if n < 2 or n > fl.MAX_N or (task == "ar" and n % 2):
        raise click.BadParameter(f"must be in [2, {fl.MAX_N:,}] (even for ar)",
                                 param_hint="--n")
    k = alphabet if alphabet is not None else n + 1
    try:
        m = fl.load_machine(machine, state_bits, k)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--machine") from None
    try:
        with tqdm(total=max_samples, unit="inputs", disable=as_json, leave=False) as bar:
            res = O.fooling_pair(task, m, n, k, rule, search, c, seed, max_samples, bar.update)
    except ValueError as exc:
        raise click.UsageError(str(exc).splitlines()[0]) from None
    if res is None:
        fail(f"no fooling pair within {max_samples} samples of the family (raise "
             "--max-samples, a larger --n, or change --seed)")
    if as_json:
        dump_json({**res.__dict__, "verified": True})
        return
    click.echo(f"task {task}, n = {n}, alphabet {k}; machine {res.machine}, {res.bits} bits, "
               f"with an AR oracle ({res.rule} occurrence, search {search}); found after <= "
               f"{res.samples} sampled members of the family ({res.family})")
    click.echo(f"  input A: data {list(res.data_a)} + query {list(res.query)}")
    click.echo(f"  input B: data {list(res.data_b)} + query {list(res.query)}")
    click.echo(f"  the oracle's answer to every one of the {k} token queries: identical for A "
               f"and B ({'yes' if res.signature_equal else 'NO'})")
    if res.oracle_calls:
        shown = ", ".join(f"ask {q} -> {'NONE' if a == O.NONE else a}"
                          for q, a in res.oracle_calls)
        click.echo(f"  oracle calls on the query tokens, both runs: {shown}")
    click.echo(f"  run A and run B (re-run token by token): state after the data = "
               f"{res.state_after_data} for both; final state = {res.final_state} for both")
    click.echo(f"  correct answers: A -> {res.answer_a}, B -> {res.answer_b} (differ)")
    click.echo("verified: same state, same oracle answers, same query, different correct answers")

"""``rnngap bound``: lengths beyond which ANY RNN with S bits of state must fail (C3, C4)."""

from __future__ import annotations

import math

import click

from rnngap.commands._common import (
    UserError,
    check_out_file,
    dump_json,
    fail,
    overwrite_option,
    read_json_file,
    table,
)

ORDER_CHOICES = {"last": ("query-last",), "first": ("query-first",),
                 "both": ("query-last", "query-first")}


def _fmt(n: int | None) -> str:
    if n is None:
        return "-"
    return str(n) if n < 10**12 else f"~2^{math.log2(n):.1f}"


def _state_from_flags(arch: str | None, config: str | None, dtype: str | None, free: dict):
    """Resolve --arch / --config / free parameters into an ArchState (or None)."""
    from rnngap.verify.bounds import archs

    given = {k: v for k, v in free.items() if v is not None}
    if config:
        if arch or given:
            raise click.UsageError("--config cannot be combined with --arch or size flags")
        cfg = read_json_file(config, "--config")
        try:
            return archs.state_from_config(cfg, dtype)
        except (ValueError, TypeError) as exc:
            raise UserError(f"--config {config}: {str(exc).splitlines()[0]}") from None
    if arch is None:
        if given or dtype:
            raise click.UsageError("size flags and --dtype need --arch FAMILY (see --list-archs)")
        return None
    if arch in archs.PRESETS:
        if given:
            raise click.UsageError(f"--arch {arch} is a published checkpoint with a fixed config; "
                                   f"drop {', '.join('--' + k.replace('_', '-') for k in given)} "
                                   f"or use a family name ({', '.join(archs.FAMILIES)})")
        return archs.preset_state(arch, dtype)
    if arch in archs.FAMILIES:
        griffin_only = [k for k in ("window", "attention_every") if k in given]
        if arch != "griffin" and griffin_only:
            raise click.UsageError(", ".join("--" + k.replace("_", "-") for k in griffin_only)
                                   + (" apply" if len(griffin_only) > 1 else " applies")
                                   + " only to --arch griffin")
        st = archs.state_of(arch, given, arch, "free parameters", dtype)
        if griffin_only and not any(comp.name.startswith("local KV") for comp in st.components):
            raise click.UsageError(
                f"{', '.join('--' + k.replace('_', '-') for k in griffin_only)} has no effect: "
                f"griffin with {st.params['n_layers']} layers has no local-attention layer (one "
                f"every {st.params['attention_every']} layers, the last of each group); raise "
                "--n-layers or lower --attention-every")
        return st
    raise click.BadParameter(f"unknown preset {arch!r} (see --list-archs)", param_hint="--arch")


def _rows(state_bits: int, tasks, orders, alphabet, c) -> list[dict]:
    """One row per (task, order); a row whose task rejects ``alphabet`` is kept with a
    ``skipped`` reason (and no numbers) instead of failing the whole table."""
    from rnngap.verify.bounds import ceilings
    from rnngap.verify.bounds import counts as bounds

    rows = []
    for task, order in bounds.DEFAULT_ROWS:
        if (tasks and task not in tasks) or order not in orders + ("stream",):
            continue
        vocab = ("n vertices (ignores --alphabet)" if alphabet is not None else "n vertices") \
            if task == "istree" else alphabet if alphabet is not None else "n+1 (grows with n)"
        n0 = {"ar": 2, "cgram": max(c, 4)}.get(task, 4)
        try:
            ex = bounds.count(task, n0, order, alphabet, c)
            n_star, exact, note = bounds.failure_length(task, state_bits, order, alphabet, c)
            cl = ceilings.ceiling_lengths(task, state_bits, alphabet, c) \
                if order in ("query-last", "stream") else None
        except ValueError as exc:
            rows.append({"task": task, "order": order, "vocab_size": vocab, "bits_needed": "",
                         "exact_count": False, "failure_length": None,
                         "failure_length_exact": False, "failure_note": f"skipped: {exc}",
                         "ceilings": None, "argument": "", "ceiling_distribution": None,
                         "skipped": str(exc)})
            continue
        rows.append({
            "task": task, "order": order, "vocab_size": vocab,
            "bits_needed": ex.formula,
            "exact_count": bool(ex.exact),
            "failure_length": bounds.big(n_star) if n_star is not None else None,
            "failure_length_exact": exact, "failure_note": note,
            "ceilings": cl, "argument": ex.argument,
            "ceiling_distribution": ceilings.DISTRIBUTION.get(task) if cl else None,
        })
    if rows and all("skipped" in r for r in rows):
        raise ValueError(rows[0]["skipped"])
    return rows


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-bits", "-S", type=int, help="S: bits of state the machine keeps.")
@click.option("--arch", help="A published checkpoint (see --list-archs) or a family name.")
@click.option("--config", type=click.Path(dir_okay=False), help="Model config JSON (rnngap or HF).")
@click.option("--d-model", type=int, help="Model width (with a family --arch).")
@click.option("--n-layers", type=int, help="Number of layers (with a family --arch).")
@click.option("--d-state", type=int, help="SSM state size per channel (mamba, mamba2).")
@click.option("--expand", type=float, help="Inner width / d_model (mamba, mamba2; default 2).")
@click.option("--heads", type=int, help="Heads (gla, retnet, deltanet, linear-attention, mlstm).")
@click.option("--d-conv", type=int, help="Short-convolution width; d_conv - 1 tokens buffered.")
@click.option("--head-dim", type=int,
              help="Head size (mamba2, rwkv6/7; griffin: local-attention head_dim).")
@click.option("--window", type=int,
              help="Griffin: local-attention window in tokens (default 2048).")
@click.option("--attention-every", type=int,
              help="Griffin: one local-attention layer every this many layers (default 3, as in "
                   "Griffin/RecurrentGemma: recurrent, recurrent, attention).")
@click.option("--dtype", help="Bits per state scalar for every component (fp32, bf16, int8...).")
@click.option("--task", type=click.Choice(["index", "ar", "cgram", "counting", "counting-exact",
                                           "istree"]), help="Only this task.")
@click.option("--n", "n", type=int, help="With --task: the exact count at this length.")
@click.option("--order", type=click.Choice(list(ORDER_CHOICES)),
              help="Query after the data (last), before it (first), or both. Default: both in "
                   "the table, last with --n.")
@click.option("--alphabet", type=int, help="Fixed alphabet k (default: n+1, growing with n).")
@click.option("--c", "c", type=int, default=2, show_default=True, help="c for c-gram retrieval.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write ceiling-vs-n plot (PNG).")
@overwrite_option
@click.option("--brute", is_flag=True,
              help="With --task and a tiny --n: also enumerate every input and compare.")
@click.option("--oracle", type=click.Choice(["ar"]),
              help="Claim C7: the machine may also ask an associative-recall oracle (the token "
                   "after an occurrence of a token; verify/bounds/oracle.py). Counts the classes "
                   "that remain after everything the oracle can reveal.")
@click.option("--occurrence", type=click.Choice(["first", "last", "adversarial"]),
              default="first", show_default=True,
              help="With --oracle: which occurrence the oracle answers from (adversarial: any; "
                   "bounds take the larger of first and last).")
@click.option("--search", "oracle_search", type=click.Choice(["all", "keys"]), default="all",
              show_default=True,
              help="With --oracle: occurrences at every position, or only at key positions "
                   "(odd, the key-value layout: an oracle for AR itself).")
@click.option("--list-archs", is_flag=True, help="List presets with their source configs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def bound(state_bits, arch, config, d_model, n_layers, d_state, expand, heads, d_conv, head_dim,
          window, attention_every, dtype, task, n, order, alphabet, c, plot, overwrite, brute,
          oracle, occurrence, oracle_search, list_archs, as_json):
    """Lower bounds for one-pass machines with S bits of state (any RNN, with or without CoT).

    \b
    Counts the prefix classes every correct machine must keep apart (Index: k^n; Counting:
    C(n+k-1, k-1); IsTree: Stirling partitions + 1; ...), and reports n*, the least length at
    which S bits cannot suffice, and the lengths where Fano's inequality caps the accuracy on
    uniform data below 99/90/50%.

    \b
      rnngap bound --state-bits 512
      rnngap bound --arch mamba-130m
      rnngap bound --task index --n 1000 --json
      rnngap bound --arch mamba --d-model 64 --n-layers 16 --d-state 16
    """
    from rnngap.verify.bounds import archs

    if list_archs:
        items = [{"arch": k, "family": f, "source": s} for k, (f, _, s) in archs.PRESETS.items()]
        if as_json:
            dump_json(items)
        else:
            for it in items:
                click.echo(f"{it['arch']:24s} {it['family']:14s} {it['source']}")
        return
    if state_bits is not None and state_bits < 1:
        raise click.BadParameter(f"must be >= 1, got {state_bits}", param_hint="--state-bits")
    if alphabet is not None and alphabet < 1:
        raise click.BadParameter("must be >= 1", param_hint="--alphabet")
    if c < 2:
        raise click.BadParameter(f"c must be >= 2, got {c}", param_hint="--c")
    if plot is not None:
        check_out_file(plot, overwrite)
    if oracle is not None:
        _oracle_mode(task, n, alphabet, c, state_bits, occurrence, oracle_search, brute,
                     as_json, bool(plot or arch or config or order or dtype))
        return
    if ctx_given(("occurrence", "oracle_search")):
        raise click.UsageError("--occurrence and --search apply only with --oracle ar")
    free = {"d_model": d_model, "n_layers": n_layers, "d_state": d_state, "expand": expand,
            "heads": heads, "d_conv": d_conv, "head_dim": head_dim, "window": window,
            "attention_every": attention_every}
    for key, val in free.items():
        if val is not None and not val > 0:
            raise click.BadParameter(f"must be {'> 0' if key == 'expand' else '>= 1'}, got {val}",
                                     param_hint="--" + key.replace("_", "-"))
    try:
        st = _state_from_flags(arch, config, dtype, free)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if st is not None and state_bits is not None:
        raise click.UsageError("give either --state-bits or an architecture, not both")
    orders = ORDER_CHOICES[order or ("last" if n is not None else "both")]
    if n is not None:
        _count_mode(task, n, orders, alphabet, c, state_bits, as_json, brute)
        return
    if brute:
        raise click.UsageError("--brute needs --task and --n")
    if st is not None and st.global_attention:
        _global(st, as_json)
        return
    if st is not None:
        state_bits = st.state_bits
    if state_bits is None:
        raise click.UsageError("give --state-bits S, --arch PRESET, --config FILE, or --task T --n N")
    try:
        rows = _rows(state_bits, (task,) if task else (), orders, alphabet, c)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if st is not None:
        _add_arch(rows, st)
    if plot:
        try:
            _plot(plot, state_bits, [r for r in rows if "skipped" not in r], alphabet, c)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot write {plot!r}: {exc}", param_hint="--plot")
    if as_json:
        dump_json(rows)
        return
    _print_table(rows, state_bits, st, plot)


def ctx_given(names: tuple[str, ...]) -> bool:
    """True when any of these options was given on the command line."""
    from click.core import ParameterSource
    ctx = click.get_current_context()
    return any(ctx.get_parameter_source(x) == ParameterSource.COMMANDLINE for x in names)


def _oracle_mode(task, n, alphabet, c, state_bits, rule, search, brute, as_json,
                 other_flags) -> None:
    """``bound --oracle ar``: classes after conditioning on the oracle (claim C7)."""
    from rnngap.verify.bounds import oracle as O

    if other_flags:
        raise click.UsageError("--oracle takes --task, --n, --state-bits, --alphabet, --c, "
                               "--occurrence, --search, --brute and --json only")
    if task == "cgram" and not ctx_given(("c",)):
        c = 3       # c = 2 is answered by one oracle call under the last rule: C7 is about c >= 3
    if task == "istree":
        raise click.BadParameter("the AR oracle bound covers the retrieval tasks "
                                 f"({', '.join(O.TASKS)})", param_hint="--task")
    if n is None and state_bits is None:
        raise click.UsageError("--oracle needs --n N (a count) or --state-bits S (failure "
                               "lengths), with --task")
    if task is None and n is not None:
        raise click.UsageError("--n needs --task")
    if n is not None and (n < 1 or (task == "ar" and n % 2) or (task == "cgram" and n < c)):
        raise click.BadParameter("must be >= 1 (even for ar, >= c for cgram)", param_hint="--n")
    if brute and n is None:
        raise click.UsageError("--brute needs --task and --n")
    if n is not None:
        k = alphabet if alphabet is not None else n + 1
        if task == "ar" and k < n // 2:
            raise click.BadParameter("AR needs alphabet >= n/2 (distinct keys)",
                                     param_hint="--alphabet")
        try:
            ct = O.count(task, n, k, rule, search, c, brute=True if brute else None)
        except ValueError as exc:
            raise click.UsageError(str(exc).splitlines()[0]) from None
        out = {"task": task, "n": n, "alphabet": k, "c": c if task == "cgram" else None,
               "oracle": "ar", "occurrence": rule,
               "search": search, "prefix_classes": ct.prefix_classes,
               "bits_needed": math.ceil(ct.bits_needed - 1e-12), "exact": ct.exact,
               "method": ct.method}
        if brute:
            fams = [f for r in O.deterministic_rules(rule)
                    if (f := O.family(task, n, k, r, search, c)) is not None]
            out["family_lower_bound"] = max((f.size for f in fams), default=1)
            if out["family_lower_bound"] > ct.prefix_classes:
                fail(f"the explicit family ({out['family_lower_bound']}) exceeds the brute-force "
                     f"count ({ct.prefix_classes}): a bug")
        if state_bits is not None:
            out["state_bits"] = state_bits
            out["state_bits_too_few"] = ct.bits_needed > state_bits
            # the least n (explicit families) where S bits with the oracle must fail
            out["failure_length"] = O.failure_length(task, state_bits, alphabet, rule, search,
                                                     c)
        if as_json:
            dump_json(out)
            return
        kind = "exactly" if ct.exact else "at least"
        name = f"cgram (c={c})" if task == "cgram" else task
        click.echo(f"{name} n={n} (alphabet {k}) with an AR oracle ({rule} occurrence, search "
                   f"{search}): {kind} {ct.prefix_classes:,} data strings with identical oracle "
                   f"answers are pairwise told apart by some query; a correct machine needs >= "
                   f"{out['bits_needed']} bits of state")
        click.echo(f"  method: {ct.method}")
        if brute:
            click.echo(f"  explicit family at this n: {out['family_lower_bound']:,} (<= the "
                       "exact count, as it must be)")
        if state_bits is not None:
            verdict = ("too few: every such machine errs on some input" if
                       out["state_bits_too_few"] else "not ruled out by this count")
            click.echo(f"  S = {state_bits:,} bits: {verdict}")
        return
    if state_bits < 1:
        raise click.BadParameter("must be >= 1", param_hint="--state-bits")
    rows = []
    for t in ((task,) if task else ("index", "ar", "cgram", "counting")):
        cc = max(c, 3) if t == "cgram" and task is None else c
        n_star = O.failure_length(t, state_bits, alphabet, rule, search, cc)
        row = {"task": t, "oracle": "ar", "occurrence": rule, "search": search,
               "state_bits": state_bits, "failure_length": n_star,
               "exact": False, "c": cc if t == "cgram" else None}
        if n_star is not None:
            k = alphabet if alphabet is not None else n_star + 1
            f = [x for r in O.deterministic_rules(rule)
                 if (x := O.family(t, n_star, k, r, search, cc)) is not None]
            row["bits_at_failure"] = round(max(x.log2_size for x in f), 2) if f else None
        else:
            row["note"] = ("no failure length: the oracle answers every query"
                           if t == "ar" and search == "keys" else
                           "no family (c-gram needs c >= 3)" if t == "cgram" and cc < 3 else
                           "not reached below n = 2^20")
        rows.append(row)
    if as_json:
        dump_json(rows)
        return
    click.echo(f"S = {state_bits:,} bits + an AR oracle ({rule} occurrence, search {search}); "
               "failure length n*: every such machine errs on some input of length n* (from an "
               "explicit family: an upper bound on the true n*)")
    for r in rows:
        what = (f"n* = {r['failure_length']:,} ({r['bits_at_failure']} bits needed there)"
                if r["failure_length"] else r["note"])
        name = f"cgram c={r['c']}" if r["task"] == "cgram" else r["task"]
        click.echo(f"  {name:<14} {what}")


def _count_mode(task, n, orders, alphabet, c, state_bits, as_json, brute=False) -> None:
    from rnngap.verify.bounds import counts as bounds

    if task is None:
        raise click.UsageError("--n needs --task")
    if n < 1:
        raise click.BadParameter("must be >= 1", param_hint="--n")
    if task == "istree":
        orders = ("stream",)
    try:
        out = [bounds.summarize(task, n, o, alphabet, c) for o in orders]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if brute:
        for d in out:
            d["brute_force"] = _brute(task, n, d["order"], d["alphabet"], c)
    for d in out:
        if state_bits is not None:
            d["state_bits"] = state_bits
            need = d["bits_needed"]
            # too few is certain when the (lower-bound) class count exceeds 2^S
            d["state_bits_too_few"] = (need > state_bits if need is not None
                                       else d["log2_prefix_classes"] > state_bits)
            d["state_bits_verdict"] = _verdict(d, state_bits)
    if as_json:
        dump_json(out[0] if len(out) == 1 else out)
        return
    for d in out:
        kind = "exactly" if d["exact"] else "at least"
        p = str(d["prefix_classes"]).lstrip(">= ")
        if d.get("float_estimate"):
            kind = "about" if d["exact"] else "at least about"
            shown = f"2^{d['log2_prefix_classes']:.2f} (floating-point estimate)"
        else:
            shown = p if len(p) <= 60 else f"2^{d['log2_prefix_classes']:.3f} (decimal in --json)"
        need = d["bits_needed"]
        click.echo(f"{task} n={n} {d['order']} (alphabet {d['alphabet']}): {kind} {shown} "
                   f"prefix classes; a correct one-pass machine needs >= "
                   f"{'about ' if need is None or d.get('float_estimate') else ''}"
                   f"{need if need is not None else round(d['log2_prefix_classes'])}"
                   " bits of state")
        click.echo(f"  argument: {d['argument']}")
        if "brute_force" in d:
            bf = d["brute_force"]
            click.echo(f"  brute force over {bf['inputs']} and every cut: largest "
                       f"pairwise-told-apart set {bf['fooling_number']} (cut {bf['cut']}), most "
                       f"distinct rows {bf['distinct_rows']}: {bf['verdict']}")
        if "note" in d:
            click.echo(f"  note: {d['note']}")
        if "state_bits_verdict" in d:
            click.echo(f"  S = {state_bits:,d} bits: {d['state_bits_verdict']}")


def _verdict(d: dict, state_bits: int) -> str:
    """What the count says about a machine with ``state_bits`` bits at this n (one line)."""
    if d["state_bits_too_few"]:
        return (f"too few: every {state_bits}-bit one-pass machine errs on some input of length "
                f"n = {d['n']}")
    up = d.get("upper")
    up = int(up) if isinstance(up, str) and up.isdigit() else up
    if d["exact"] and isinstance(up, int) and (up - 1).bit_length() <= state_bits:
        return ("enough for the counting bound; a machine with this many states exists "
                "(time-indexed, as in the argument)")
    return "not ruled out by the counting bound (a lower bound: it does not show S bits suffice)"


def _brute(task: str, n: int, order: str, k: int, c: int) -> dict:
    """``verify.bounds.prefix_classes.brute_force`` for --brute; exit 1 on disagreement."""
    from rnngap.verify.bounds import prefix_classes as pc

    size = pc.input_count(task, n, k)
    if size > pc.BRUTE_LIMIT or (task == "istree" and n > pc.BRUTE_ISTREE_MAX):
        raise click.UsageError(f"--brute enumerates every input: {task} at n={n} is too large "
                               f"({size} inputs; limit {pc.BRUTE_LIMIT}, IsTree n <= "
                               f"{pc.BRUTE_ISTREE_MAX})")
    try:
        out = pc.brute_force(task, n, order, k, c)
    except pc.TooLarge as exc:
        raise click.UsageError(f"--brute: {task} at n={n} is too large to brute-force: "
                               f"{exc}; try a smaller --n or --alphabet") from None
    if not out.pop("agrees"):
        fail(f"brute force gives {out['fooling_number']}, formula {out.pop('formula')} ({task}, "
             f"n={n}, {order})")
    out.pop("formula")
    return out


def _add_arch(rows: list[dict], st) -> None:
    from rnngap.verify.bounds.archs import kv_cache_bits

    d, layers = int(st.params["d_model"]), int(st.params["n_layers"])
    for r in rows:
        r.update(arch=st.arch, state_scalars=st.state_scalars, state_bits=st.state_bits)
        n_star = r["failure_length"]
        if isinstance(n_star, int):
            r["transformer_kv_bits_at_failure_length"] = kv_cache_bits(d, layers, n_star)


def _global(st, as_json: bool) -> None:
    msg = {"arch": st.arch, "state_scalars": None, "state_bits": None, "failure_length": None,
           "argument": st.notes[-1], "source": st.source}
    if as_json:
        dump_json(msg)
    else:
        click.echo(f"{st.arch}: {st.notes[-1]}.\n  source: {st.source}")


def _print_table(rows, state_bits, st, plot) -> None:
    if st is not None:
        click.echo(f"{st.arch} ({st.family}); source: {st.source}")
        for comp in st.components:
            click.echo(f"  {comp.name:32s} {comp.scalars:>14,d} scalars x {comp.bits:2d} bits")
        for note in st.notes:
            click.echo(f"  note: {note}")
    click.echo(f"S = {state_bits:,d} bits of state\n")
    cols = ["task", "order", "vocab", "bits needed", "n*", "n@99%", "n@90%", "n@50%"]
    out = []
    for r in rows:
        if "skipped" in r:
            out.append({"task": r["task"], "order": r["order"], "vocab": r["vocab_size"],
                        "bits needed": "skipped", "n*": "skipped"})
            continue
        cl = r["ceilings"] or {}
        n_star = r["failure_length"]
        star = _fmt(int(n_star)) if n_star is not None else "-"
        if n_star is not None and not r["failure_length_exact"]:
            star = "<=" + star
        out.append({"task": r["task"], "order": r["order"], "vocab": r["vocab_size"],
                    "bits needed": ("" if r["exact_count"] else ">= ") + r["bits_needed"],
                    "n*": star, **{f"n@{int(float(k) * 100)}%": _fmt(v) for k, v in cl.items()}})
    click.echo(table(out, cols))
    idx = next((r for r in rows if r["task"] == "index" and r["order"] == "query-last"), None)
    if idx and idx["failure_length"] is not None:
        line = (f"\nReading: any one-pass machine with {state_bits:,d} bits (any RNN, any CoT) "
                f"answers some Index input wrongly at n >= {_fmt(int(idx['failure_length']))} "
                "when the query comes last; with the query first it needs only O(log n) bits.")
        if "transformer_kv_bits_at_failure_length" in idx:
            line += (f"\nA Transformer of the same width and depth holds "
                     f"{idx['transformer_kv_bits_at_failure_length']:,d} bits of KV cache at that n"
                     " (bf16).")
        click.echo(line)
    for r in rows:
        if "skipped" in r:
            click.echo(f"skipped {r['task']} {r['order']}: {r['skipped']}")
    click.echo("'>=': lower bound only (not exact); '<=': n* from a lower bound on the classes "
               "(failure certain there, maybe earlier); '-': not derived / none; n@a%: Fano "
               "ceiling on uniform data below a (--json has each row's argument and "
               "distribution).")
    if plot:
        click.echo(f"plot written to {plot}")


def _plot(path: str, state_bits: int, rows: list[dict], alphabet, c) -> None:
    """Accuracy ceiling vs n (query-last tasks with a ceiling), n* marked by dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnngap.verify.bounds.ceilings import ceiling

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        if not r["ceilings"] or r["order"] == "query-first" or r["task"] == "counting-exact":
            continue
        marks = [v for v in (*r["ceilings"].values(), r["failure_length"]) if isinstance(v, int)]
        if not marks:
            continue
        top = max(marks)
        step = 2 if r["task"] == "ar" else 1
        pts = sorted({max(step, int(x) // step * step) for x in
                      [(2.5 * top) ** (i / 300) for i in range(301)]})
        ys = [ceiling(r["task"], x, state_bits, alphabet, c) for x in pts]
        label = "counting (both forms)" if r["task"] == "counting" else r["task"]
        line, = ax.plot(pts, ys, label=label)
        if isinstance(r["failure_length"], int):
            ax.axvline(r["failure_length"], ls="--", color=line.get_color(), lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("n (data length; IsTree: vertices)")
    ax.set_ylabel("accuracy ceiling (Fano, uniform data)")
    ax.set_title(f"Any one-pass machine with S = {state_bits:,d} bits; dashed: n* (exact failure)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

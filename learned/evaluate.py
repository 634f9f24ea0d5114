"""Evaluate a trained run: accuracy THROUGH GENERATION with live retrieval, and the official
teacher-forced metric, side by side on the same samples.

Generation (greedy, batched, lock-step): the prompt (IsTree: up to and including the first
``[EOS]``; retrieval tasks: the task row) is run once to fill the model state (KV cache for
attention, recurrent state for Mamba); then one token per row per step through ``LM.step``:
nothing re-reads the prefix. Whenever a row's last token is ``[ENDSEARCH]``, the NEXT token of
that row is not the model's: ``tasks/retrieval_env.py`` executes the query between the last
``[STARTSEARCH]`` and that ``[ENDSEARCH]`` against the row's whole context and appends its
answer (or ``[FAILED]``). IsTree answer: the first ``[TRUE]``/``[FALSE]`` generated (no label
within the length cap counts as wrong), as in the official ``evaluate_through_generation``.
Retrieval tasks (index, ar, cgram, counting): the first generated token.

Teacher-forced metric (what the official ``val.py`` reports, labelled as such): a sample counts
as correct when every supervised target token is the argmax given the TRUE prefix (gold chain
of thought and gold retrieved tokens fed in). It can be far above the generation accuracy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rnngap.learned import checkpoint as ck
from rnngap.learned.data import (
    TEST,
    TEST_BUCKETS,
    DataSpec,
    input_space_size,
    make_batch,
    to_training,
)
from rnngap.learned.train import TrainConfig, check_scan, masked_loss, pick_device
from rnngap.models.lm import LM, LMConfig


def load_run(run: str | Path, n: int | None = None, fmt: str | None = None,
             device: str = "cpu") -> tuple[LM, DataSpec, TrainConfig, dict]:
    """The trained LM of ``run`` (for task size ``n`` / format ``fmt`` if given), its DataSpec,
    TrainConfig and checkpoint metadata. Raises CheckpointError / ValueError on bad input."""
    dev = pick_device(device)  # an unusable --device is a usage error before any file is read
    run = Path(run)
    cfg = ck.read_run_config(run)
    try:
        mcfg = LMConfig.from_dict(cfg["model"])
        data = DataSpec.from_dict(cfg["data"])
        tc = TrainConfig.from_dict(cfg["train"])
    except (TypeError, ValueError) as exc:
        raise ck.CheckpointError(f"{run}/config.json is not a usable run config: {exc}") from None
    tensors, meta = ck.read_checkpoint(run, cfg)
    if n is not None or fmt is not None:
        data = replace(data, n=data.n if n is None else n, fmt=data.fmt if fmt is None else fmt)
        need = data.vocab_size()
        if mcfg.embedding == "official":
            # the number embedding is a fixed function, so a larger vocabulary is the same model
            mcfg = replace(mcfg, vocab_size=need)
        elif need > mcfg.vocab_size:
            raise ValueError(f"{run} has a learned embedding of {mcfg.vocab_size} tokens; "
                             f"{data.task} at n={data.n} needs {need} (train with a larger "
                             f"alphabet, e.g. --task-param alphabet=K, or evaluate at a "
                             f"smaller --n)")
    if mcfg.scan == "cuda" and mcfg.arch != "transformer":
        try:
            check_scan(mcfg, dev)
        except ValueError:
            # the weights do not depend on the scan: evaluate with the reference scan instead
            mcfg = replace(mcfg, scan="auto")
    lm = LM(mcfg)
    ck.load_model_weights(lm, tensors)
    return lm.to(dev).eval(), data, tc, meta


@torch.no_grad()
def generate(lm: LM, prompts: torch.Tensor, max_new: int, *, envs: list | None = None,
             start: int | None = None, end: int | None = None,
             stop: tuple[int, ...] = (), malformed=None) -> tuple[np.ndarray, int]:
    """Greedy lock-step generation for prompts (B, P) of one length, on the shared decode loop
    (``models.decode.greedy_decode``) with retrieval plugged into its step.

    ``envs`` (one RetrievalEnv per row, already holding the prompt) enables live retrieval:
    after a row emits ``end`` the env answers the query since the last ``start`` and that answer
    is the row's next token. A row stops after emitting a token in ``stop``, or as soon as
    ``malformed(prev, tok)`` (vectorised over rows: previous token or -1, new token) says its
    transcript can no longer be well formed (that row's output then ends with -2). Every step
    runs the whole batch (finished rows are fed their own greedy token), so each row's numerics
    are those of a fixed batch. Returns (generated (B, <=max_new) int64, padded with -1 after a
    row stopped; number of retrievals executed).
    """
    from rnngap.models.decode import greedy_decode

    B = prompts.shape[0]
    state = lm.init_state(B)
    alive = np.arange(B)
    prev = np.full(B, -1, dtype=np.int64)      # each live row's previous token (-1: none)
    forced = np.full(B, -1, dtype=np.int64)    # a retrieval answer to write next
    retrievals = 0

    def written(logits: torch.Tensor) -> np.ndarray:
        """The tokens the live rows write from these (full-batch) logits, with retrieval
        answers forced, malformed transcripts marked -2 and the environments fed."""
        nonlocal retrievals
        greedy = logits.argmax(-1).cpu().numpy()
        nxt = np.where(forced >= 0, forced, greedy)
        forced[:] = -1
        tok = nxt[alive]
        if malformed is not None:
            tok = np.where(malformed(prev[alive], tok), -2, tok)
        for r, t in zip(alive.tolist(), tok.tolist(), strict=True):
            if t == -2:
                continue
            prev[r] = t
            if envs is not None:
                envs[r].append(t)
                if t == end:
                    q = envs[r].pending_query(start, end)
                    forced[r] = envs[r].retrieve(q if q is not None else []).token
                    retrievals += 1
        step.feed = nxt                          # what the whole batch is fed next
        return torch.from_numpy(tok)

    def prefill() -> torch.Tensor:
        return written(lm.prefill(prompts, state)[:, -1])

    def step(_tokens: torch.Tensor) -> torch.Tensor:
        return written(lm.step(torch.from_numpy(step.feed).to(prompts.device), state))

    def select(keep: torch.Tensor) -> None:
        nonlocal alive
        alive = alive[keep.numpy()]

    rows = greedy_decode(prefill, step, select, B, max_new, (*stop, -2))
    width = max((len(r) for r in rows), default=0)
    out = np.full((B, width), -1, dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out, retrievals


def _istree_answer(gen: np.ndarray) -> np.ndarray:
    """+1 / 0 for the first [TRUE] / [FALSE] in each row, -1 when neither was generated."""
    from rnngap.tasks.istree import FALSE, TRUE

    ans = np.full(gen.shape[0], -1, dtype=np.int64)
    for b, row in enumerate(gen):
        hits = np.flatnonzero((row == TRUE) | (row == FALSE))
        if hits.size:
            ans[b] = 1 if row[hits[0]] == TRUE else 0
    return ans


@torch.no_grad()
def evaluate(lm: LM, data: DataSpec, samples: int, batch_size: int, seed: int,
             progress: bool = False) -> dict:
    """Both metrics on ``samples`` test samples (stream TEST of ``seed``); see module docstring."""
    dev = lm.device
    space = input_space_size(data)
    correct = tf_ok = exact = retrievals = failures = malformed = 0
    tf_hits = tf_tok = 0.0
    done = 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=samples, desc="eval", unit="sample", dynamic_ncols=True)
    i = 0
    while done < samples:
        bs = min(batch_size, samples - done)
        b = make_batch(data, bs, seed, i, TEST)
        i += 1
        x, y, m = (t.to(dev) for t in to_training(b))
        _, hits, allok = masked_loss(lm(x), y, m)
        tf_ok += int(allok.sum())
        tf_hits += float(hits)
        tf_tok += float(m.sum())
        if data.task == "istree":
            c, e, r, f, bad = _istree_generation(lm, data, b)
            malformed += bad
        else:
            gen, _ = generate(lm, torch.from_numpy(b.tokens[:, :-1]).to(dev), 1)
            c = e = int((gen[:, 0] == b.labels).sum())
            r = f = 0
        correct, exact, retrievals, failures = correct + c, exact + e, retrievals + r, failures + f
        done += bs
        if bar is not None:
            bar.update(bs)
            bar.set_postfix(acc=f"{correct / done:.3f}")
    if bar is not None:
        bar.close()
    return {"task": data.task, "n": data.n, "format": data.fmt, "samples": samples,
            "accuracy_generation": correct / samples,
            "accuracy_teacher_forced": tf_ok / samples,
            "teacher_forced_token_accuracy": tf_hits / max(tf_tok, 1.0),
            "exact_sequence_generation": exact / samples,
            "retrievals_executed": retrievals, "retrieval_failures": failures,
            "malformed_stopped": malformed,
            "embedding": getattr(getattr(lm, "cfg", None), "embedding", None),
            "input_space": None if space is None else str(space),
            "held_out": f"1/{TEST_BUCKETS} of the input space by a fixed hash (never trained on)",
            "metric_notes": {
                "accuracy_generation": "greedy generation with KV cache / recurrent state; every "
                                       "[STARTSEARCH]..[ENDSEARCH] query executed live",
                "accuracy_teacher_forced": "official val.py metric: all supervised tokens "
                                           "argmax-correct given the gold prefix (not generation)"}}


def _istree_malformed(fmt: str):
    """Format rules a continuation can break at one token (then generation of that row stops
    and it counts as wrong, instead of running to the length cap): [PAD], [BOS], [UNK] never
    follow the prompt; in ``plain`` the first token is the label; after [EOS] comes the label."""
    from rnngap.tasks import istree

    never = np.array([istree.PAD, istree.BOS, 10], dtype=np.int64)  # 10: [UNK]
    label = np.array([istree.TRUE, istree.FALSE], dtype=np.int64)

    def bad(prev: np.ndarray, tok: np.ndarray) -> np.ndarray:
        out = np.isin(tok, never)
        must_label = (prev == istree.EOS) | ((prev == -1) if fmt == "plain" else False)
        return out | (must_label & ~np.isin(tok, label))
    return bad


def _istree_generation(lm: LM, data: DataSpec, b) -> tuple[int, int, int, int, int]:
    """(correct labels, exact continuations, retrievals, retrieval failures, malformed
    transcripts stopped early) for one batch."""
    from rnngap.tasks import istree
    from rnngap.tasks.retrieval_env import istree_env

    dev = lm.device
    correct = exact = retrievals = failures = malformed = 0
    for plen in np.unique(b.prompt_len):
        rows = np.flatnonzero(b.prompt_len == plen)
        prompts = torch.from_numpy(b.tokens[rows, :plen]).to(dev)
        gold_len = [int((b.tokens[r] != istree.PAD).sum()) - plen for r in rows]
        max_new = int(max(gold_len) * 1.5) + 8
        envs = []
        for r in rows:
            env = istree_env(data.n)
            env.extend(b.tokens[r, :plen])
            envs.append(env)
        gen, nret = generate(lm, prompts, max_new, envs=envs, start=istree.S, end=istree.E,
                             stop=(istree.TRUE, istree.FALSE),
                             malformed=_istree_malformed(data.fmt))
        ans = _istree_answer(gen)
        correct += int((ans == b.labels[rows]).sum())
        for k, r in enumerate(rows):
            g = gen[k][gen[k] >= 0]
            exact += int(np.array_equal(g, b.tokens[r, plen:plen + gold_len[k]]))
        retrievals += nret
        failures += sum(env.failures for env in envs)
        malformed += int((gen == -2).any(1).sum())
    return correct, exact, retrievals, failures, malformed

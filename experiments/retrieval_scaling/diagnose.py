"""Why the learned models did not learn, measured: one change at a time on associative recall.

Every probe trains a small model (d_model 32, batch 32, AdamW, warmup + cosine, seed 0, one
thread) and reports held-out accuracy BY GENERATION (learned/evaluate.py on the TEST part of the
hash split). The probes, in the order of the diagnosis in docs/learning.md:

  official        frozen sinusoidal table + tied frozen head (the paper's setup)
  learned-nopos   trainable token table + untied head, no position table
  learned         ... plus a trainable absolute position table (rnngap's ``learned``)
  small-init      ``learned`` with the token table drawn N(0, 0.11^2) instead of N(0, 1), at a
                  65-token alphabet (n = 16), against ``learned`` at the same alphabet
  no-mix / mix    n = 64: every batch at n, against the length mixture 8, 16, 32, 64
  hybrid-top      hybrid with its attention layer on top of the Mamba layers (official
                  placement) against attention between two Mamba layers

    python experiments/retrieval_scaling/diagnose.py            # writes diagnose.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
T_KW = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64}
H_KW = {"d_model": 32, "n_layers": 2, "d_state": 8, "n_heads": 2, "d_mlp": 16}


def probe(name: str, what: str, arch: str, kw: dict, n: int, steps: int, *, lr: float = 3e-3,
          embedding: str = "learned", positions: bool = True, tok_std: float | None = None,
          alphabet: int | None = None, min_n: int | None = None, seed: int = 0) -> dict:
    from rnngap.learned.data import TRAIN, DataSpec, make_batch, to_training
    from rnngap.learned.evaluate import evaluate
    from rnngap.learned.train import TrainConfig, lr_at, masked_loss
    from rnngap.models.lm import LM, LMConfig

    params = {} if alphabet is None else {"alphabet": alphabet}
    data = DataSpec("ar", n, params=params, min_n=min_n)
    test = DataSpec("ar", n, params=params)
    torch.manual_seed(seed)
    lm = LM(LMConfig(arch=arch, vocab_size=data.vocab_size(), max_len=n + 2,
                     embedding=embedding, **kw))
    if embedding == "learned" and not positions:
        lm.pos_embed.weight.data.zero_()
        lm.pos_embed.weight.requires_grad_(False)
    if embedding == "learned" and tok_std is not None:
        torch.nn.init.normal_(lm.tok_embed.weight, std=tok_std)
    tc = TrainConfig(steps=steps, batch_size=32, lr=lr, warmup=50, seed=seed)
    ps = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in ps if p.dim() >= 2], "weight_decay": 0.01},
                             {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}],
                            lr=lr, foreach=False)
    c0 = time.process_time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step + 1, tc)
        x, y, m = to_training(make_batch(data, 32, seed, step, TRAIN))
        loss, _, _ = masked_loss(lm(x), y, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        opt.step()
    lm.eval()
    acc = evaluate(lm, test, 512, 256, seed)["accuracy_generation"]
    row = {"probe": name, "what": what, "arch": arch, "n": n, "alphabet": test.vocab_size(),
           "steps": steps, "batch_size": 32, "lr": lr, "embedding": embedding,
           "positions": positions, "tok_std": tok_std if tok_std is not None else 1.0,
           "mix_min_n": min_n, "final_train_loss": float(loss.detach()), "accuracy_generation": acc,
           "trainable": lm.trainable_parameters(), "cpu_s": time.process_time() - c0}
    print(f"{name:16s} {what:58s} acc {acc:.3f} ({row['cpu_s']:.0f} cpu-s)", flush=True)
    return row


def main() -> None:
    torch.set_num_threads(1)
    rows = [
        probe("official", "frozen sinusoid + tied frozen head", "transformer", T_KW, 16, 2000,
              embedding="official"),
        probe("learned-nopos", "trainable tokens + untied head, no positions", "transformer",
              T_KW, 16, 2000, positions=False),
        probe("learned", "trainable tokens + positions + untied head", "transformer", T_KW, 16,
              2000),
        probe("small-init", "learned, token table N(0, 0.11^2), 65-token alphabet",
              "transformer", T_KW, 16, 2000, tok_std=0.02 * 32 ** 0.5, alphabet=65),
        probe("learned-k65", "learned (N(0, 1) tokens), 65-token alphabet", "transformer",
              T_KW, 16, 2000, alphabet=65),
        probe("no-mix", "learned, n = 64, every batch at n", "transformer", T_KW, 64, 2500),
        probe("mix", "learned, n = 64, lengths 8, 16, 32, 64 mixed", "transformer", T_KW, 64,
              2500, min_n=8),
        probe("hybrid-top", "hybrid, Mamba x2 -> attention on top", "hybrid",
              {**H_KW, "attn_position": 2}, 16, 2000),
        probe("hybrid-mid", "hybrid, Mamba -> attention -> Mamba", "hybrid",
              {**H_KW, "attn_position": 1}, 16, 2000),
    ]
    out = {"command": "python experiments/retrieval_scaling/diagnose.py " + " ".join(sys.argv[1:]),
           "torch": torch.__version__, "rows": rows}
    (HERE / "diagnose.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

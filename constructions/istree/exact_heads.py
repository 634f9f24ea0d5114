"""Building blocks shared by the hand-set IsTree models whose activations are all integers.

* :class:`Head` / :func:`set_head`: an exact-match attention head.  At key position j, for
  query fields x_r and key fields y_r(j), the score (in units of ``BETA``) is::

      W * (sum_r (4 x_r y_r(j) - 2 y_r(j)^2) - 2 (sum_r x_r^2) NOTBOS(j) + c(j)) + T * TB(j)
        = W * (-2 sum_r (x_r - y_r(j))^2 + c(j)) + T * TB(j)            (j not [BOS])

  with c(j) = 0 where MASK(j) = 1 (keys), -2 elsewhere, and, for a head with a sink, -1 at
  [BOS], whose key features are all 0: with no match the sink wins and the head reads zeros.
  Integer features and a unique maximum make the row exactly one-hot (beta = 1024 makes every
  other exponential underflow to 0; ``verify.certificates.underflow_lemma``).
* :func:`set_pointer`: the positional pointer ``beta (2 P j - j^2)`` (peak at j = P).
* :class:`MLPWriter`: writes ReLU units ``relu(sum c_i x_i + b)`` and their read-outs.
* :class:`Audit` / :func:`audited`: a run-time audit that every attention row of the used heads
  is exactly one-hot and every residual entry an integer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn

BETA = 1024.0


@dataclass(frozen=True)
class Head:
    """fields (x, x^2, y, y^2) channel names, the key mask channel, a sink at [BOS] or not,
    the scale W, the tie-break T * TB (TB a channel or None), values (src, dst) channels."""

    fields: tuple[tuple[str, str, str, str], ...]
    mask: str
    sink: bool
    w: float
    t: float
    tb: str | None
    values: tuple[tuple[str, str], ...]


def set_head(sd: dict, prefix: str, o: int, head: Head, C: dict[str, int]) -> None:
    """Write ``head`` into the attention weights under ``prefix`` at head offset ``o``
    (= head index * d_head); needs channels NOTBOS and ISBOS."""
    q, qb, k, kb = (sd[prefix + "q_proj.weight"], sd[prefix + "q_proj.bias"],
                    sd[prefix + "k_proj.weight"], sd[prefix + "k_proj.bias"])
    w, r = head.w * BETA, 0
    for x, x2, y, y2 in head.fields:
        q[o + r, C[x]], k[o + r, C[y]] = 4 * w, 1.0
        qb[o + r + 1], k[o + r + 1, C[y2]] = -2 * w, 1.0
        q[o + 2 * len(head.fields), C[x2]] = -2 * w
        r += 2
    k[o + r, C["NOTBOS"]] = 1.0
    r += 1
    qb[o + r] = w                        # c(j) = -2 + 2 MASK(j) + (sink: ISBOS(j); else 0)
    kb[o + r] = -2.0
    k[o + r, C[head.mask]] = 2.0
    k[o + r, C["ISBOS"]] = 1.0 if head.sink else 0.0
    if head.tb is not None:
        qb[o + r + 1] = head.t * BETA
        k[o + r + 1, C[head.tb]] = 1.0
    for i, (src, dst) in enumerate(head.values):
        sd[prefix + "v_proj.weight"][o + i, C[src]] = 1.0
        sd[prefix + "o_proj.weight"][C[dst], o + i] = 1.0


def set_pointer(sd: dict, prefix: str, o: int, query: dict[str, float], bias: float,
                pos: str, pos2: str, values: Sequence[tuple[str, str]],
                C: dict[str, int]) -> None:
    """A pointer head: P = sum query[c] x_c + bias; score beta (2 P j - j^2) peaks at j = P
    (j = 1 when P < 1, j = i when P > i); reads ``values`` (src, dst)."""
    for ch, c in query.items():
        sd[prefix + "q_proj.weight"][o, C[ch]] = BETA * c
    sd[prefix + "q_proj.bias"][o] = BETA * bias
    sd[prefix + "q_proj.bias"][o + 1] = BETA
    sd[prefix + "k_proj.weight"][o, C[pos]] = 2.0
    sd[prefix + "k_proj.weight"][o + 1, C[pos2]] = -1.0
    for i, (src, dst) in enumerate(values):
        sd[prefix + "v_proj.weight"][o + i, C[src]] = 1.0
        sd[prefix + "o_proj.weight"][C[dst], o + i] = 1.0


class MLPWriter:
    """Writes hidden units relu(sum c_i x_i + b) and their read-outs into the ReLU MLP under
    ``prefix`` (appending after the units already set)."""

    def __init__(self, sd: dict, prefix: str, C: dict[str, int]):
        self.sd, self.p, self.C = sd, prefix, C
        used = sd[prefix + "fc_in.weight"].abs().sum(1) + sd[prefix + "fc_in.bias"].abs()
        self.u = int((used != 0).sum())

    def unit(self, terms: dict[str, float], bias: float, out: dict[str, float]) -> None:
        if self.u >= self.sd[self.p + "fc_in.bias"].shape[0]:
            raise ValueError(f"{self.p}: more hidden units than d_mlp")
        for ch, c in terms.items():
            self.sd[self.p + "fc_in.weight"][self.u, self.C[ch]] = c
        self.sd[self.p + "fc_in.bias"][self.u] = bias
        for ch, c in out.items():
            self.sd[self.p + "fc_out.weight"][self.C[ch], self.u] = c
        self.u += 1

    def tent(self, terms: dict[str, float], bias: float, out: dict[str, float]) -> None:
        """Adds [d = 0] * out for the integer d = sum c_i x_i + b (three units)."""
        for db, c in ((1.0, 1.0), (0.0, -2.0), (-1.0, 1.0)):
            self.unit(terms, bias + db, {ch: c * v for ch, v in out.items()})


@dataclass
class Audit:
    """What a p-bit run observed: attention rows of the used heads that were not exactly
    one-hot, residual entries that were not integers, the largest residual magnitude."""

    not_one_hot: int = 0
    non_integer: int = 0
    max_abs: float = 0.0
    rows: int = 0

    def add(self, other: Audit) -> None:
        self.not_one_hot += other.not_one_hot
        self.non_integer += other.non_integer
        self.rows += other.rows
        self.max_abs = max(self.max_abs, other.max_abs)


@contextmanager
def audited(blocks: Sequence[nn.Module], used_heads: Sequence[int],
            audit: Audit | None) -> Iterator[None]:
    """While active, every p-bit ``attend`` of ``blocks[i].attn`` checks its first
    ``used_heads[i]`` heads for exactly one-hot rows and every block output for integers."""
    if audit is None:
        yield
        return
    handles = []
    for block, used in zip(blocks, used_heads, strict=True):
        def probe(a: Tensor, used: int = used) -> None:
            if not used:
                return
            a = a[:, :used]
            ok = (a.amax(-1) == 1.0) & ((a == 0) | (a == 1)).all(-1)
            audit.rows += ok.numel()
            audit.not_one_hot += int((~ok).sum())

        def hook(_mod, _inp, out: Tensor) -> None:
            audit.non_integer += int((out != out.round()).sum())
            audit.max_abs = max(audit.max_abs, float(out.abs().max()))

        block.attn.probe = probe
        handles.append(block.register_forward_hook(hook))
    try:
        yield
    finally:
        for block in blocks:
            block.attn.probe = None
        for h in handles:
            h.remove()

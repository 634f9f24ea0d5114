"""Hand-set hybrids (linear RNN + ONE attention layer, Definition 5.5; Theorem 5.6, claim C6).

The recurrence computes local features exactly (integers), the single attention layer retrieves.

Index (``build_index``): width 4, channels as ``constructions.retrieval.index`` (TOK, POS, POS2, Y).
Two LinearRNN layers, each with d_inner = d_state = 1, conv width 1, decay a = 1::

    layer 1: u_t = 1 (in_proj bias),          h_t = h_{t-1} + u_t = t,       C writes h -> POS
    layer 2: u_t = 2 POS_t - 1 = 2t - 1,      h_t = h_{t-1} + u_t = t^2,     C writes h -> POS2

(sum_{s<=t} (2s - 1) = t^2). The embedding is the Index construction's (token t -> t on TOK), so
the residual stream entering attention is E[t_j] + (0, j, j^2, 0): exactly the Transformer
construction's h^0 = E[t_j] + P[j], once every integer involved is exact at p bits
(|x| <= (n+1)^2 + 2(n+1) <= 2^p, implied by the claimed p(n)). The attention layer, (zero) MLP
and unembedding are copied from ``constructions.retrieval.index``; ``verify.retrieval.hybrid``
proves the equality
and reduces to ``verify.retrieval.index``. Recurrent state: 2 scalars (the two counters), i.e. 2p
bits.

n enters only through the attention layer's scalar beta (as in the Transformer construction);
the RNN weights are the same for every n.

c-gram retrieval and AR (``build_gram``): ONE LinearRNN layer whose causal conv (width K) copies
exact earlier tokens, and ONE attention head that matches them. With m = c - 1 (AR: m = 1) and a
delay delta (c-gram: delta = m; AR: delta = 0), the residual at position j holds::

    TOK, TOK2 = x_j, x_j^2 (embedding)     S_r = x_{j-r+1} (r = 2..m: the query gram at j = L)
    VAL = x_{j-delta}                      G_r, G2_r = x_{j-delta-r}, its square (r = 1..m)
    POS = j (decay-1 counter; c-gram)      PEN = [j < K] (conv of the constant: 1 - u_{j-K+1};
                                                  c-gram) or [j odd] (decay -1 parity; AR)

(x_s = 0 for s < 1: the conv's zero history). Position j "offers" the value x_v, v = j - delta,
after the gram x_{v-m}..x_{v-1}. The attention query at L reads Q_1 = TOK, Q_r = S_r, i.e.
Q_r = x_{L+1-r}, and scores (the gram construction's matcher, ``constructions.retrieval.cgram``)::

    s_j / beta = W sum_r (2 Q_r G_r(j) - G2_r(j)) + T POS(j) - W PEN(j)

c-gram: the query gram y_1..y_m is x_{L-m+1}..x_L, so G_r(j) = Q_r for all r iff the c-gram
x_{v-m}..x_v starts with y; PEN(j) = 0 iff j >= K = 2m + 1 iff v >= c, and j <= L iff v <= n: the
delay makes every position up to L a legitimate value position (no look-ahead is needed to
exclude the query positions). W = L, T = 1: the LAST allowed match wins. AR: PEN = [j odd] keeps
the even (value) positions, G_1(j) = x_{j-1} is the key before value x_j; W = 1, T = 0.
beta = 1024 makes the attention exactly one-hot (every other score is >= beta lower).
Recurrent state: 1 scalar (counter or parity) + the conv buffer (K-1) * d_inner scalars.

Counting, threshold form (``build_counting``; row x_1..x_n q t, L = n + 2): the conv (K = 2)
writes G = x_{j-1}, G2 = x_{j-1}^2 and A = [j = 1] (= 1 - u_{j-1}); the embedding carries
(t, t^2, TH(t)) with TH(t) = (1/(t+2) + 1/(t+3)) / 2. The head at L has Q = G(L) = q and scores

    s_j / beta = 2 Q G(j) - G2(j) + Q^2 A(j) = Q^2 - (G(j) - Q)^2 + Q^2 A(j)   (G(1) = 0)

so the maximum Q^2 is reached exactly at: position 1 (the anchor, A = 1), the positions
j = 2..n+1 with x_{j-1} = q, and position L (which describes x_{L-1} = q itself): cnt + 2
positions, every other one >= beta lower. The value is A, so the output is the anchor's weight
F = r(1/(cnt + 2)); the readout ``logit_1 = TH - F, logit_0 = 0, logit_{>=2} = -2`` answers 1 iff
TH(t) > F iff cnt > t. No position has to be excluded, so no look-ahead is needed. Recurrent
state: the conv buffer (3 scalars) plus one (unused, B = 0) state scalar.

Counting, exact-count form (row x_1..x_n q -> cnt, L = n + 1): the same RNN layer (no TH); the
query reads the last token itself, Q = TOK(L) = q, Q^2 = TOK2(L). The maximum Q^2 is reached at
position 1 (the anchor) and at j = 2..n+1 with x_{j-1} = q: cnt + 1 positions, so F =
r(1/(cnt + 1)), exactly the anchor weight of the exact Transformer
(``constructions.retrieval.counting``),
and the readout is its unembedding ``logit_t = 2 F u_t - u_t^2``, u_t = 1/(t+1): the count whose
u_t is nearest to F wins. Precision (``counting_precision``; the readout dominates)::

    p(n) = max(bits(2 (V-1)^2), bits(n+1), ceil(log2(6 (n+2)^2)) + 1)   ~ 2 log2 n + 4.6
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnngap.constructions.base import Construction
from rnngap.constructions.retrieval import index as index_construction
from rnngap.constructions.retrieval.counting import exact_readout_bits
from rnngap.models.hybrid_lrnn import HybridLRNNConfig
from rnngap.tasks.registry import CARDS, load

BUILT = tuple(name for name, card in CARDS.items() if card.hybrid)
BETA = 1024.0
GRAM_PRECISION_FORMULA = ("ceil(log2(max(L, (V-1)^2, m*K^2, 2*W*K, W*m*K^2 + W + T*L))), "
                          "K = k-1, m = c-1 (AR: 1), W = L, T = 1 (AR: W = 1, T = 0)")


def _rnn_layer(prefix: str, d: int, read: dict[int, float], bias: float, write: int,
               a: float = 1.0) -> dict[str, Tensor]:
    """One LinearRNN layer with d_inner = d_state = 1, conv width 1:
    u = sum_c read[c] x_c + bias, h_t = a h_{t-1} + u_t, output h into channel ``write``."""
    f64 = torch.float64
    w_in = torch.zeros(1, d, dtype=f64)
    for ch, val in read.items():
        w_in[0, ch] = val
    C = torch.zeros(d, 1, dtype=f64)
    C[write, 0] = 1.0
    return {prefix + "in_proj.weight": w_in, prefix + "in_proj.bias": torch.tensor([bias]),
            prefix + "conv_weight": torch.ones(1, 1, dtype=f64),
            prefix + "conv_bias": torch.zeros(1, dtype=f64),
            prefix + "a": torch.tensor([a], dtype=f64), prefix + "B": torch.ones(1, 1, dtype=f64),
            prefix + "C": C, prefix + "D": torch.zeros(d, 1, dtype=f64)}


def build_index(task) -> Construction:
    """The Index hybrid for ``task`` (an ``IndexTask``); see the module docstring."""
    tc = index_construction.build(task)
    ch = tc.channels
    d = tc.config.d_model
    cfg = HybridLRNNConfig(vocab_size=tc.config.vocab_size, d_model=d, n_rnn_layers=2,
                           d_inner=1, d_state=1, conv_kernel=1, selective=False,
                           n_heads=tc.config.n_heads, d_head=tc.config.d_head,
                           d_mlp=tc.config.d_mlp, attn_scale=1.0, bias=True)
    sd: dict[str, Tensor] = {"embed.weight": tc.state_dict["embed.weight"].clone()}
    sd.update(_rnn_layer("rnn.0.", d, {}, 1.0, ch["POS"]))
    sd.update(_rnn_layer("rnn.1.", d, {ch["POS"]: 2.0}, -1.0, ch["POS2"]))
    for k, v in tc.state_dict.items():
        if k.startswith("blocks.0."):
            sd["block." + k[len("blocks.0."):]] = v.clone()
    sd["unembed.weight"] = tc.state_dict["unembed.weight"].clone()
    sd["unembed.bias"] = tc.state_dict["unembed.bias"].clone()
    sd = {k: v.to(torch.float64) for k, v in sd.items()}
    return Construction(
        task="index", n=task.n, task_params=dict(tc.task_params), config=cfg, state_dict=sd,
        precision_bits=tc.precision_bits, precision_formula=tc.precision_formula,
        channels=dict(ch), rnn_channels=["POS", "POS2"], scalars=dict(tc.scalars),
        notes="RNN: counters t and t^2 (decay 1); attention/unembedding of constructions.retrieval.index")


def gram_channels(m: int) -> dict[str, int]:
    """Residual channels of the gram hybrid (module docstring)."""
    ch = {"TOK": 0, "TOK2": 1, "POS": 2, "PEN": 3, "VAL": 4, "Y": 5}
    for r in range(2, m + 1):
        ch[f"S_{r}"] = 4 + r
    for r in range(1, m + 1):
        ch[f"G_{r}"] = 4 + m + r
        ch[f"G2_{r}"] = 4 + 2 * m + r
    return ch


def gram_bounds(L: int, m: int, k: int, vocab: int, W: int, T: int) -> dict[str, int]:
    """Largest magnitude of each family of integers in the gram hybrid's forward pass (scores in
    units of beta = 2^10): |2QG - G^2| <= K^2 per term, so |s/beta| <= W m K^2 + T L + W."""
    K = k - 1
    return {"positions L": L, "token squares (V-1)^2": (vocab - 1) ** 2,
            "sum of squares m K^2": m * K * K, "query 2 W K": 2 * W * K,
            "scores W m K^2 + W + T L": W * m * K * K + W + T * L}


def bits_for(bound: int) -> int:
    """Least p >= 2 with bound <= 2^p."""
    return max(2, (max(1, bound) - 1).bit_length())


def build_gram(task_name: str, task) -> Construction:
    """The c-gram (``task_name == "cgram"``) or AR hybrid; see the module docstring."""
    f64 = torch.float64
    ar = task_name == "ar"
    m = 1 if ar else task.c - 1
    delta = 0 if ar else m
    L, k, vocab = task.seq_len(), task.k, task.vocab_size()
    W, T = (1, 0) if ar else (L, 1)
    K = delta + m + 1
    ch = gram_channels(m)
    d = len(ch)
    taps = [{"src": "TOK", "lag": r - 1, "dest": f"S_{r}"} for r in range(2, m + 1)]
    taps += [{"src": "TOK", "lag": delta + r, "dest": f"G_{r}"} for r in range(1, m + 1)]
    taps += [{"src": "TOK2", "lag": delta + r, "dest": f"G2_{r}"} for r in range(1, m + 1)]
    taps += [{"src": "TOK", "lag": delta, "dest": "VAL"}]
    n_data = len(taps)
    const = n_data                              # inner channel: constant 1 (feeds the state)
    taps.append({"src": None, "kernel": {0: 1.0}, "bias": 0.0, "dest": None})
    if not ar:                                  # PEN = 1 - u_{j-K+1} = [j < K]
        taps.append({"src": None, "kernel": {K - 1: -1.0}, "bias": 1.0, "dest": "PEN"})
    di = len(taps)
    t = torch.arange(vocab, dtype=f64)
    sd: dict[str, Tensor] = {}
    emb = torch.zeros(vocab, d, dtype=f64)
    emb[:, ch["TOK"]], emb[:, ch["TOK2"]] = t, t * t
    sd["embed.weight"] = emb
    w_in, b_in = torch.zeros(di, d, dtype=f64), torch.zeros(di, dtype=f64)
    conv, conv_b = torch.zeros(di, K, dtype=f64), torch.zeros(di, dtype=f64)
    D = torch.zeros(d, di, dtype=f64)
    for i, tap in enumerate(taps):
        if tap["src"] is not None:
            w_in[i, ch[tap["src"]]] = 1.0
            conv[i, tap["lag"]] = 1.0
        else:
            b_in[i] = 1.0
            for lag, w in tap["kernel"].items():
                conv[i, lag] = w
            conv_b[i] = tap["bias"]
        if tap["dest"] is not None:
            D[ch[tap["dest"]], i] = 1.0
    B = torch.zeros(1, di, dtype=f64)
    B[0, const] = 1.0
    C = torch.zeros(d, 1, dtype=f64)
    C[ch["PEN" if ar else "POS"], 0] = 1.0
    p_ = "rnn.0."
    sd.update({p_ + "in_proj.weight": w_in, p_ + "in_proj.bias": b_in, p_ + "conv_weight": conv,
               p_ + "conv_bias": conv_b, p_ + "a": torch.tensor([-1.0 if ar else 1.0], dtype=f64),
               p_ + "B": B, p_ + "C": C, p_ + "D": D})
    sd.update(gram_attention(ch, m, W, T, d, vocab))
    cfg = HybridLRNNConfig(vocab_size=vocab, d_model=d, n_rnn_layers=1, d_inner=di, d_state=1,
                           conv_kernel=K, selective=False, n_heads=1, d_head=m + 3, d_mlp=1,
                           attn_scale=1.0, bias=True)
    params = {"alphabet": k} if ar else {"c": task.c, "alphabet": k}
    p = bits_for(max(gram_bounds(L, m, k, vocab, W, T).values()))
    return Construction(
        task=task_name, n=task.n, task_params=params, config=cfg, state_dict=sd,
        precision_bits=p, precision_formula=GRAM_PRECISION_FORMULA, channels=ch,
        rnn_channels=[c_ for c_ in ch if c_ not in ("TOK", "TOK2", "Y")],
        scalars={"beta": BETA, "W": float(W), "T": float(T), "delay": float(delta),
                 "conv_kernel": float(K)},
        notes=("parity state (decay -1) marks odd positions; conv copies the key before each "
               "value" if ar else "conv copies the c-gram ending m positions back; the counter "
               "breaks ties towards the last match"), taps=taps)


def _zero_mlp(d: int) -> dict[str, Tensor]:
    """The attention block's MLP, all zero (d_mlp = 1): it outputs exactly 0."""
    f64 = torch.float64
    return {"block.mlp.fc_in.weight": torch.zeros(1, d, dtype=f64),
            "block.mlp.fc_in.bias": torch.zeros(1, dtype=f64),
            "block.mlp.fc_out.weight": torch.zeros(d, 1, dtype=f64),
            "block.mlp.fc_out.bias": torch.zeros(d, dtype=f64)}


def gram_attention(ch: dict[str, int], m: int, W: int, T: int, d: int, vocab: int
                   ) -> dict[str, Tensor]:
    """The matcher head, its zero MLP and the quadratic unembedding (module docstring)."""
    f64 = torch.float64
    Dh = m + 3
    a = "block.attn."
    sd = {a + "q_proj.weight": torch.zeros(Dh, d, dtype=f64),
          a + "k_proj.weight": torch.zeros(Dh, d, dtype=f64),
          a + "v_proj.weight": torch.zeros(Dh, d, dtype=f64),
          a + "o_proj.weight": torch.zeros(d, Dh, dtype=f64)}
    for name in ("q_proj", "k_proj", "v_proj"):
        sd[a + name + ".bias"] = torch.zeros(Dh, dtype=f64)
    sd[a + "o_proj.bias"] = torch.zeros(d, dtype=f64)
    for r in range(1, m + 1):
        sd[a + "q_proj.weight"][r - 1, ch["TOK"] if r == 1 else ch[f"S_{r}"]] = 2 * BETA * W
        sd[a + "k_proj.weight"][r - 1, ch[f"G_{r}"]] = 1.0
        sd[a + "k_proj.weight"][m, ch[f"G2_{r}"]] = -1.0
    sd[a + "q_proj.bias"][m], sd[a + "q_proj.bias"][m + 1] = BETA * W, BETA * T
    sd[a + "q_proj.bias"][m + 2] = BETA * W
    sd[a + "k_proj.weight"][m + 1, ch["POS"]] = 1.0
    sd[a + "k_proj.weight"][m + 2, ch["PEN"]] = -1.0
    sd[a + "v_proj.weight"][0, ch["VAL"]] = 1.0
    sd[a + "o_proj.weight"][ch["Y"], 0] = 1.0
    sd.update(_zero_mlp(d))
    t = torch.arange(vocab, dtype=f64)
    w_u = torch.zeros(vocab, d, dtype=f64)
    w_u[:, ch["Y"]] = 2 * t
    sd["unembed.weight"], sd["unembed.bias"] = w_u, -(t * t)
    return sd


def counting_theta(t: Tensor) -> Tensor:
    """TH(t) = (1/(t+2) + 1/(t+3)) / 2 = (2t + 5) / (2 (t+2) (t+3)), in float64."""
    return (2 * t + 5) / (2 * (t + 2) * (t + 3))


def counting_precision(n: int, vocab: int, exact: bool = False) -> int:
    """Integers (scores up to 2 (V-1)^2 in partial sums, Z up to n + 2, resp. n + 1) and the
    readout: threshold form, the relative gap about 1/(2(t+3)) between TH(t) and 1/(t+2),
    1/(t+3); exact form, ``constructions.retrieval.counting.exact_readout_bits`` (2^p > ~6
    (n+2)^2)."""
    if exact:
        return max(bits_for(2 * (vocab - 1) ** 2), bits_for(n + 1), exact_readout_bits(n))
    return max(bits_for(2 * (vocab - 1) ** 2), bits_for(n + 2),
               (n + 3).bit_length() + 3)


COUNTING_FORMULA = "max(bits(2 (V-1)^2), bits(n+2), bitlength(n+3) + 3)"
COUNTING_EXACT_FORMULA = "max(bits(2 (V-1)^2), bits(n+1), ceil(log2(6 (n+2)^2)) + 1)"


def build_counting(task) -> Construction:
    """The Counting hybrid, threshold form or (``task.exact``) the exact-count form; see the
    module docstring."""
    f64 = torch.float64
    V, exact = task.vocab_size(), bool(task.exact)
    names = ["TOK", "TOK2"] + ([] if exact else ["TH"]) + ["G", "G2", "A", "F"]
    ch = {name: i for i, name in enumerate(names)}
    d = len(ch)
    taps = [{"src": "TOK", "lag": 1, "dest": "G"}, {"src": "TOK2", "lag": 1, "dest": "G2"},
            {"src": None, "kernel": {1: -1.0}, "bias": 1.0, "dest": "A"}]
    t = torch.arange(V, dtype=f64)
    emb = torch.zeros(V, d, dtype=f64)
    emb[:, ch["TOK"]], emb[:, ch["TOK2"]] = t, t * t
    if not exact:
        emb[:, ch["TH"]] = counting_theta(t)
    w_in, b_in = torch.zeros(3, d, dtype=f64), torch.tensor([0.0, 0.0, 1.0], dtype=f64)
    w_in[0, ch["TOK"]], w_in[1, ch["TOK2"]] = 1.0, 1.0
    conv = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, -1.0]], dtype=f64)
    D = torch.zeros(d, 3, dtype=f64)
    D[ch["G"], 0], D[ch["G2"], 1], D[ch["A"], 2] = 1.0, 1.0, 1.0
    sd: dict[str, Tensor] = {"embed.weight": emb}
    p_ = "rnn.0."
    sd.update({p_ + "in_proj.weight": w_in, p_ + "in_proj.bias": b_in, p_ + "conv_weight": conv,
               p_ + "conv_bias": torch.tensor([0.0, 0.0, 1.0], dtype=f64),
               p_ + "a": torch.ones(1, dtype=f64), p_ + "B": torch.zeros(1, 3, dtype=f64),
               p_ + "C": torch.zeros(d, 1, dtype=f64), p_ + "D": D})
    sd.update(counting_attention(ch, V, exact))
    cfg = HybridLRNNConfig(vocab_size=V, d_model=d, n_rnn_layers=1, d_inner=3, d_state=1,
                           conv_kernel=2, selective=False, n_heads=1, d_head=3, d_mlp=1,
                           attn_scale=1.0, bias=True)
    return Construction(
        task="counting", n=task.n, task_params={"alphabet": task.k, "exact": exact},
        config=cfg, state_dict=sd, precision_bits=counting_precision(task.n, V, exact),
        precision_formula=COUNTING_EXACT_FORMULA if exact else COUNTING_FORMULA, channels=ch,
        rnn_channels=["G", "G2", "A"], scalars={"beta": BETA, "conv_kernel": 2.0},
        notes=("anchor at position 1 (A = [j = 1]); the query is the last token q: F = "
               "1/(cnt + 1), logit_t = 2F/(t+1) - 1/(t+1)^2" if exact else
               "anchor at position 1 (A = [j = 1]) plus the self-match: F = 1/(cnt + 2)"),
        taps=taps)


def counting_attention(ch: dict[str, int], V: int, exact: bool = False) -> dict[str, Tensor]:
    """The counting head (q = beta (2Q, 1, Q^2), k = (G, -G2, A), v = A -> F; Q = G, Q^2 = G2
    in the threshold form, Q = TOK, Q^2 = TOK2 in the exact form), zero MLP, and the readout:
    logit_1 = TH - F, logit_0 = 0, logit_{>=2} = -2 (threshold); logit_t = fl(2/(t+1)) F -
    fl(1/(t+1)^2) (exact: the unembedding of ``constructions.retrieval.counting``)."""
    f64 = torch.float64
    d = len(ch)
    a = "block.attn."
    sd = {a + n_: torch.zeros(3, d, dtype=f64) for n_ in ("q_proj.weight", "k_proj.weight",
                                                          "v_proj.weight")}
    for n_ in ("q_proj.bias", "k_proj.bias", "v_proj.bias"):
        sd[a + n_] = torch.zeros(3, dtype=f64)
    sd[a + "o_proj.weight"], sd[a + "o_proj.bias"] = torch.zeros(d, 3, dtype=f64), \
        torch.zeros(d, dtype=f64)
    sd[a + "q_proj.weight"][0, ch["TOK" if exact else "G"]] = 2 * BETA
    sd[a + "q_proj.bias"][1] = BETA
    sd[a + "q_proj.weight"][2, ch["TOK2" if exact else "G2"]] = BETA
    sd[a + "k_proj.weight"][0, ch["G"]] = 1.0
    sd[a + "k_proj.weight"][1, ch["G2"]] = -1.0
    sd[a + "k_proj.weight"][2, ch["A"]] = 1.0
    sd[a + "v_proj.weight"][0, ch["A"]] = 1.0
    sd[a + "o_proj.weight"][ch["F"], 0] = 1.0
    sd.update(_zero_mlp(d))
    t = torch.arange(V, dtype=f64)
    w_u = torch.zeros(V, d, dtype=f64)
    if exact:
        w_u[:, ch["F"]] = 2.0 / (t + 1)
        b_u = -1.0 / ((t + 1) * (t + 1))
    else:
        b_u = torch.full((V,), -2.0, dtype=f64)
        w_u[1, ch["TH"]], w_u[1, ch["F"]] = 1.0, -1.0
        b_u[0] = b_u[1] = 0.0
    sd["unembed.weight"], sd["unembed.bias"] = w_u, b_u
    return sd


def build_ar(task) -> Construction:
    """The AR hybrid (the card's ``hybrid_construction``)."""
    return build_gram("ar", task)


def build_cgram(task) -> Construction:
    """The c-gram hybrid (the card's ``hybrid_construction``)."""
    return build_gram("cgram", task)


def build(task_name: str, task) -> Construction:
    """The hybrid construction for ``task_name`` (its card's ``hybrid_construction``);
    ValueError for a task not built."""
    card = CARDS.get(task_name)
    if card is None or card.hybrid_construction is None:
        raise ValueError(f"hybrid construction for {task_name} not built (built: "
                         f"{', '.join(BUILT)})")
    return load(card.hybrid_construction)(task)

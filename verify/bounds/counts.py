"""Exact information counting: how many states a one-pass machine needs, per task and input order.

Model (BRIEF.md, "RNN with M-bit memory"): a deterministic machine reads the input once, token by
token; between tokens it keeps one of at most ``2**M`` states. Chain of thought comes after the
input and cannot help: the state after the input must already separate what is needed (C3, C4).

Counting argument. Cut every input of a task into a prefix (what was read) and a continuation
(what is still to come). Two prefixes are *told apart* when some continuation valid for both gives
different answers; a correct machine must keep them in different states. The *prefix classes*
``P(n)`` reported here are the largest number of prefixes that are pairwise told apart at the
worst cut (a fooling set; the rows of the one-way communication matrix, counted so that rows that
differ only in which continuations are valid do not count twice). Any correct machine has
``>= P(n)`` states, i.e. ``>= ceil(log2 P(n))`` bits. The failure length ``n*(S)`` is the least
``n`` with ``P(n) > 2**S``: every machine with ``S`` bits errs on some input of length ``n*``
(Kremer, Nisan, Ron 1999 for the randomized, error-allowed version of the Index case; see
``rnngap.verify.bounds.ceilings``). The lower bound holds even for machines whose transition
depends on
the position; for such machines it is also tight where ``exact`` is True.

Orders: ``query-last`` (data, then the query: the paper's order, the hard one), ``query-first``
(the same query tokens, then the data: easy, O(log n) bits), ``stream`` (IsTree: no query).
Every closed form below is checked against :mod:`rnngap.verify.bounds.prefix_classes` at tiny sizes
in
``tests/test_bounds.py``; "exact" means equality with the brute-force maximum over all cuts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rnngap.tasks.registry import CARDS, load
from rnngap.verify.bounds.istree import (  # noqa: F401  (re-exported)
    istree_classes,
    istree_lower_log2,
    stirling2_row,
)
from rnngap.verify.search import least_true

ORDERS = ("query-last", "query-first", "stream")


@dataclass(frozen=True)
class Count:
    """Result of counting one task at one length ``n``.

    Attributes:
        prefix_classes: pairwise-told-apart prefixes at the worst cut (a proven lower bound on the
            number of states; the exact maximum when ``exact``).
        exact: True when ``prefix_classes`` equals the maximum fooling set over all cuts.
        upper: where known, the state count of an explicit machine (time-indexed), else None.
        distinct_rows: distinct rows of the communication matrix at that cut (counts rows that
            differ only in their valid continuations; >= prefix_classes), None if not derived.
    """

    task: str
    order: str
    n: int
    alphabet: int
    prefix_classes: int
    exact: bool
    argument: str
    formula: str
    upper: int | None = None
    distinct_rows: int | None = None

    @property
    def log2_classes(self) -> float:
        return math.log2(self.prefix_classes) if self.prefix_classes > 0 else 0.0

    @property
    def bits_needed(self) -> int:
        """Least M with 2**M >= prefix_classes."""
        return (self.prefix_classes - 1).bit_length()

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("prefix_classes", "upper", "distinct_rows"):
            if isinstance(d[key], int):
                d[key] = big(d[key])
        d["bits_needed"] = self.bits_needed
        d["log2_prefix_classes"] = round(self.log2_classes, 6)
        return d


MAX_DECIMAL_BITS = 200_000  # beyond this an integer is shown as 2^log2 (about 60k digits)


def big(x: int) -> int | str:
    """JSON-safe integer: a decimal string beyond 2**53 (exact in every JSON reader); beyond
    MAX_DECIMAL_BITS bits, ``"2^<log2>"`` with six decimals (the decimal would be unreadable)."""
    if abs(x) < 2**53:
        return x
    if x.bit_length() > MAX_DECIMAL_BITS:
        return f"2^{math.log2(x):.6f}"
    import sys

    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return str(x)
    finally:
        sys.set_int_max_str_digits(old)


def _alphabet(n: int, alphabet: int | None) -> int:
    k = n + 1 if alphabet is None else alphabet
    if k < 1:
        raise ValueError(f"alphabet must be >= 1, got {k}")
    return k


def index_count(n: int, alphabet: int | None = None, order: str = "query-last") -> Count:
    """Index_n over alphabet k (Def 4.2).

    query-last: every data string x in [k]^n is its own class (x != x' differ at some i, and
    query i tells them apart), so P = k^n; inner cuts give k^j <= k^n. Exact.
    query-first: after reading i and x_1..x_j the residual is "the constant x_i" (i <= j, k values)
    or "coordinate i-j of the rest" (i > j, n-j values); the worst cut is j = 1: P = n + k - 1
    (k >= 2). Exact, total task. A machine keeping (i, x_i) reaches it.
    """
    k = _alphabet(n, alphabet)
    if order == "query-last":
        return Count("index", order, n, k, k**n, True, "one-way INDEX: every data string is a class",
                     "n*log2(k)", upper=k**n, distinct_rows=k**n)
    if order == "query-first":
        p = 1 if k == 1 else n + k - 1
        return Count("index", order, n, k, p, True,
                     "query known: keep the query or the answer", "log2(n+k-1)", upper=p,
                     distinct_rows=p)
    raise ValueError(f"Index has orders query-last, query-first; got {order!r}")


def ar_count(n: int, alphabet: int | None = None, order: str = "query-last") -> Count:
    """Associative recall (Def 4.3), n = 2m: k_1 v_1 .. k_m v_m, keys distinct in [k], k >= m.

    query-last: the data determines a map from an m-set of keys to values; P = k^m (fix the key
    set, vary the values: pairwise told apart). No larger fooling set exists: for a uniformly
    random F: [k] -> [k], a fooling set contains at most one restriction of F, and each map is a
    restriction with probability k^-m. Other cuts are smaller: after j pairs the same argument
    gives k^j; after j pairs and a pending key a, prefixes restricting F with pending key g (g
    uniform) are pairwise compatible, so at most k^(j+1). Distinct rows are C(k, m) k^m (the key
    set changes which queries are valid, not what must be remembered). Exact.
    query-first: between k (the query alone, m >= 2) and 2k + 1 (remember q; then "found, value
    v"; plus "next token is the answer"): Theta(log n) bits, bounds only.
    """
    if n % 2 or n < 2:
        raise ValueError(f"AR needs an even n >= 2 (key-value pairs), got {n}")
    k, m = _alphabet(n, alphabet), n // 2
    if k < m:
        raise ValueError(f"AR needs alphabet >= n/2 = {m} for distinct keys, got {k}")
    if order == "query-last":
        return Count("ar", order, n, k, k**m, True,
                     "fooling set: fixed keys, all value vectors", "(n/2)*log2(k)",
                     distinct_rows=math.comb(k, m) * k**m)
    if order == "query-first":
        return Count("ar", order, n, k, k, False, "k answers (and, m >= 2, k queries) are classes",
                     "log2(k) .. log2(2k+1)", upper=2 * k + 1)
    raise ValueError(f"AR has orders query-last, query-first; got {order!r}")


def cgram_family(n: int, c: int, k: int) -> tuple[int, int]:
    """Parameters ``(a, m)`` of our explicit c-gram fooling family, of size (k - a)^m.

    Data = r filler tokens then m = floor(n/c) blocks ``K_i v_i``: K_i distinct (c-1)-grams over a
    key alphabet A = [0, a) (a = least with a^(c-1) >= m), v_i from the other k - a symbols, the
    filler the symbol a. The only all-A windows are the keys (every other window contains a value
    or filler), each key occurs once, and its successor is v_i; so two members with different
    value vectors are told apart by the first differing key: size (k - a)^m.
    """
    if c < 2:
        raise ValueError(f"c must be >= 2, got {c}")
    m = n // c
    if m == 0:
        return 1, 0
    a = max(1, round(m ** (1.0 / (c - 1))))
    while a > 1 and (a - 1) ** (c - 1) >= m:
        a -= 1
    while a ** (c - 1) < m:
        a += 1
    return a, m


def cgram_count(n: int, c: int = 2, alphabet: int | None = None, order: str = "query-last"
                ) -> Count:
    """c-gram retrieval (Def 4.4), last-occurrence convention.

    query-last: a LOWER bound from explicit fooling families; the exact maximum is not derived
    (brute force at tiny n shows it is larger). :func:`cgram_family` for every c; for c = 2 also
    the bigrams family: data = filler, then a_1 v_1 .. a_m v_m with keys a_i = i - 1 and v_i any
    symbol except a_1..a_i (so v_i in B or a later key); the last occurrence of a_l with a
    successor is its key position (values equal to a_l sit earlier), so query a_i answers v_i,
    and members differing at i are told apart by a_i: size (k-1)(k-2)..(k-m), m = min(n/2, k-1).
    Grows like (n/c) log2 n with the default alphabet: o(n)-bit machines fail for large n.
    query-first: at least k^(c-1) classes (the query alone, n >= 2c); a machine keeping the query,
    the last c-1 tokens and the current answer needs at most k^(2c-2) (k+1) states.
    """
    if c < 2 or n < c:
        raise ValueError(f"c-gram needs c >= 2 and n >= c, got c={c}, n={n}")
    k = _alphabet(n, alphabet)
    if order == "query-last":
        a, m = cgram_family(n, c, k)
        size = (k - a) ** m if k > a else 1
        if c == 2:
            m2 = min(n // 2, k - 1)
            size2 = math.perm(k - 1, m2)
            if size2 >= size:
                return Count("cgram", order, n, k, max(size2, k), False,
                             f"fooling family: {m2} bigrams a_i v_i, v_i not among a_1..a_i",
                             "log2((k-1)!/(k-1-m)!), m = n/2  [lower bound]")
        return Count("cgram", order, n, k, max(size, k), False,
                     f"fooling family: {m} blocks key(c-1)+value, keys over {a} symbols",
                     "(n/c)*log2(k-a)  [lower bound]")
    if order == "query-first":
        lo = max(k ** (c - 1) if n >= 2 * c else 1, k)
        return Count("cgram", order, n, k, lo, False, "the query alone is a class (n >= 2c)",
                     "(c-1)log2(k) .. (2c-2)log2(k)+log2(k+1)",
                     upper=k ** (2 * c - 2) * (k + 1))
    raise ValueError(f"c-gram has orders query-last, query-first; got {order!r}")


def counting_count(n: int, alphabet: int | None = None, exact: bool = False,
                   order: str = "query-last") -> Count:
    """Counting (Def 4.5): threshold form ``[#q > t]`` (t in [0, n]) or the exact count.

    query-last: the data's class is its count vector (t in [0, n] reads off c_q exactly), so
    P = C(n+k-1, k-1) compositions of n into k parts (k >= 2). Exact, total task. With the
    default k = n + 1 this is C(2n, n) ~ 4^n / sqrt(pi n): about 2n bits.
    query-first: the residual after (q, t, x_1..x_j) is "[#q in rest > t - c_j]": k(n-j) live
    thresholds plus constant 0 and constant 1; worst at j = 0: P = kn + 1. Exact form: "c_j +
    #q in rest": k(j+1) classes, worst at j = n-1: P = kn. Both exact (k >= 2).
    """
    k = _alphabet(n, alphabet)
    name = "counting-exact" if exact else "counting"
    if k < 2:
        raise ValueError("Counting needs alphabet >= 2 (with one symbol every count is n)")
    if order == "query-last":
        p = math.comb(n + k - 1, k - 1)
        return Count(name, order, n, k, p, True, "count vectors: compositions of n into k parts",
                     "log2 C(n+k-1, k-1)", upper=p, distinct_rows=p)
    if order == "query-first":
        p = k * n if exact else k * n + 1
        return Count(name, order, n, k, p, True, "query known: keep the remaining threshold",
                     "log2(kn)" if exact else "log2(kn+1)", upper=p, distinct_rows=p)
    raise ValueError(f"Counting has orders query-last, query-first; got {order!r}")


def istree_count(n: int, order: str = "stream") -> Count:
    """IsTree_n (Thm 4.7): n vertices, n - 1 distinct edges streamed; is it a tree?

    The prefix classes are set partitions (Stirling numbers of the second kind) plus the
    already-has-a-cycle class (proof in :mod:`rnngap.verify.bounds.istree`); log2 of the maximum
    grows like n log2 n - O(n log log n), matching the Omega(n log n) one-pass bound of Sun and
    Woodruff (2015). Exact: the maximum fooling set over cuts between edges (brute force agrees
    for n <= 6). Cuts inside an edge's tokens (``u - v``) can only add classes.
    """
    if order != "stream":
        raise ValueError("IsTree has no query: its only order is 'stream'")
    if n < 2:
        raise ValueError(f"IsTree needs n >= 2, got {n}")
    p, j = istree_classes(n)
    return Count("istree", order, n, n, p, True,
                 f"vertex partitions left by a forest prefix (+1 cycle class), cut after {j} edges",
                 "log2 max_j [S(n,n-j) + [j>=3]]")


def counting_exact_count(n: int, alphabet: int | None = None, order: str = "query-last"
                         ) -> Count:
    """Counting's exact-count form (its own row of ``rnngap bound``)."""
    return counting_count(n, alphabet, True, order)


def istree_any_order(n: int, alphabet: int | None = None, order: str = "stream") -> Count:
    """IsTree with the counters' signature: the default order query-last reads as stream; the
    alphabet is the n vertices."""
    return istree_count(n, "stream" if order == "query-last" else order)


#: counted rows that are not a retrieval card's own counter: Counting's exact form and IsTree
EXTRA_COUNTERS = {"counting-exact": counting_exact_count, "istree": istree_any_order}
#: the tasks :func:`count` counts: every card with a ``counter``, then :data:`EXTRA_COUNTERS`
TASKS = (*(name for name, card in CARDS.items() if card.counter), *EXTRA_COUNTERS)


def count(task: str, n: int, order: str = "query-last", alphabet: int | None = None,
          c: int = 2) -> Count:
    """The task's counter (its card's ``counter``, or :data:`EXTRA_COUNTERS`); ``task`` in
    :data:`TASKS`. ``c`` reaches the counters of cards that declare the option ``c``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if task in EXTRA_COUNTERS:
        return EXTRA_COUNTERS[task](n, alphabet=alphabet, order=order)
    card = CARDS.get(task)
    if card is None or card.counter is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    params = {o.name: c for o in card.options if o.name == "c"}
    return load(card.counter)(n, alphabet=alphabet, order=order, **params)


FIRST_MAX_BITS = 4096  # query-first failure lengths (about 2^S) are searched only up to this S
ISTREE_EXACT_MAX = 200  # IsTree counts use exact Stirling numbers up to this n


def log2_big(task: str, n: int, order: str, alphabet: int | None, c: int) -> float | None:
    """Float log2 of P(n) for the formulas whose exact integers get huge; None: use exact."""
    k = n + 1 if alphabet is None else alphabet
    if order != "query-last":
        return None
    if task == "index":
        return n * math.log2(k) if k > 1 else 0.0
    if task == "ar":
        return (n // 2) * math.log2(k)
    if task == "cgram":
        a, m = cgram_family(n, c, k)
        lg = max(m * math.log2(k - a), math.log2(k)) if k - a > 1 and m else None
        if c == 2 and lg is not None:
            m2 = min(n // 2, k - 1)
            lg = max(lg, (math.lgamma(k) - math.lgamma(k - m2)) / math.log(2))
        return lg
    if task in ("counting", "counting-exact"):
        terms = min(k - 1, n)  # log2 C(n+k-1, k-1) = sum_i log2((big+i)/i), big = max(n, k-1)
        if terms <= 100_000:  # a short sum: no cancellation even for astronomically large n
            top = max(n, k - 1)
            return math.fsum(math.log2(top + i) - math.log2(i) for i in range(1, terms + 1))
        return (math.lgamma(n + k) - math.lgamma(k) - math.lgamma(n + 1)) / math.log(2)
    return None


def exceeds(task: str, n: int, state_bits: int, order: str = "query-last",
            alphabet: int | None = None, c: int = 2) -> bool:
    """P(n) > 2**S: doubles when log2 P is farther than 1e-12 S + 1e-6 from S (their relative
    error is ~1e-15), exact integers otherwise; above BIG_COUNT_BITS bits the doubles decide even
    inside that margin (the integer would be too large to build). IsTree beyond
    ISTREE_EXACT_MAX uses the lower bound of :func:`istree_lower_log2`."""
    if task == "istree" and n > ISTREE_EXACT_MAX:
        lg, b = istree_lower_log2(n)
        if abs(lg - state_bits) > 1e-12 * state_bits + 1e-6 or lg > BIG_COUNT_BITS:
            return lg > state_bits
        return (b ** (n - b)).bit_length() > state_bits  # b^(n-b) + 1 > 2^S
    lg = log2_big(task, n, order, alphabet, c)
    if lg is not None and (abs(lg - state_bits) > 1e-12 * state_bits + 1e-6
                           or lg > BIG_COUNT_BITS):
        return lg > state_bits  # doubles: relative error ~1e-15, far below the margin
    return (count(task, n, order, alphabet, c).prefix_classes - 1).bit_length() > state_bits


def _valid(task: str, n: int, alphabet: int | None, c: int) -> bool:
    if task == "ar":
        return n % 2 == 0 and n >= 2 and (alphabet is None or alphabet >= n // 2)
    if task == "cgram":
        return n >= c
    return n >= (2 if task == "istree" else 1)


def failure_length(task: str, state_bits: int, order: str = "query-last",
                   alphabet: int | None = None, c: int = 2) -> tuple[int | None, bool, str]:
    """``(n*, exact, note)``: n* is the least valid n with P(n) > 2**S, so no S-bit machine is
    correct
    on every input of length n* (nor, P being nondecreasing, of any longer length).

    ``exact`` is False when n* comes from a lower bound on P: the rows of LOWER_BOUND_ONLY
    (c-gram, AR query-first) and IsTree beyond ISTREE_EXACT_MAX (then every S-bit machine still
    fails at n*, but a shorter length may too: n* is an upper bound on the true failure length).
    None when no valid n exceeds 2**S (a fixed alphabet can cap P; AR needs k >= n/2), or for
    query-first orders when S > FIRST_MAX_BITS (n* is then beyond 2**(S/(2c)); not searched).
    """
    if state_bits < 1:
        raise ValueError(f"state bits must be >= 1, got {state_bits}")
    if order == "query-first" and state_bits > FIRST_MAX_BITS:
        return None, False, (f"query-first needs O(log n) bits: n* is astronomically large "
                             f"(not searched for S > {FIRST_MAX_BITS})")
    step = 2 if task == "ar" else 1
    start = {"ar": 2, "cgram": c, "istree": 2}.get(task, 1)
    cap = 2 ** (state_bits + 8) if state_bits <= FIRST_MAX_BITS else 2**64
    if task == "ar" and alphabet is not None:
        cap = min(cap, 2 * alphabet)

    def fails(n: int) -> bool:
        return _valid(task, n, alphabet, c) and exceeds(task, n, state_bits, order, alphabet, c)

    if task == "istree":
        found = least_true(fails, start, 1, ISTREE_EXACT_MAX)
        if found is not None:
            return found, True, "exact"
        return (least_true(fails, ISTREE_EXACT_MAX + 1, 1, cap), False,
                "from the lower bound S(n,b) >= b^(n-b): failure is certain here, maybe earlier")
    found = least_true(fails, start, step, cap)
    if found is None:
        return None, True, f"no valid n <= {big(cap)} exceeds 2^S"
    if (task, order) in LOWER_BOUND_ONLY:
        return found, False, ("from a lower bound on the prefix classes: failure is certain "
                              "here, maybe earlier (an upper bound on the true n*)")
    return found, True, "exact"


#: (task, order) whose P(n) is only a lower bound (Count.exact False): their n* is an upper bound
LOWER_BOUND_ONLY = frozenset({("cgram", "query-last"), ("cgram", "query-first"),
                              ("ar", "query-first")})


BIG_COUNT_BITS = 4_000_000  # count mode expands P(n) exactly only below this many bits


def summarize(task: str, n: int, order: str = "query-last", alphabet: int | None = None,
              c: int = 2) -> dict:
    """The JSON summary of P(n) for the CLI; for huge P (> BIG_COUNT_BITS bits, or IsTree beyond
    2000 vertices) it reports log2 P from the closed form without expanding the integer."""
    lg = log2_big(task, n, order, alphabet, c)
    if task == "istree" and n > 2000:
        lg_lb, b = istree_lower_log2(n)
        base = istree_count(10)  # for the argument text only
        return {"task": task, "order": "stream", "n": n, "alphabet": n,
                "prefix_classes": f">= 2^{lg_lb:.6f}", "exact": False,
                "bits_needed": math.floor(lg_lb) + 1, "log2_prefix_classes": round(lg_lb, 6),
                "argument": base.argument.split(",")[0] + f"; lower bound S(n,{b}) >= "
                f"{b}^(n-{b}) (exact Stirling numbers only up to n = 2000)",
                "formula": base.formula}
    if lg is None or lg <= BIG_COUNT_BITS:
        return count(task, n, order, alphabet, c).to_json()
    small = count(task, {"ar": 2, "cgram": max(c, 4)}.get(task, 4), order, alphabet, c)
    frac = lg - math.floor(lg)
    bits = math.floor(lg) + 1 if 1e-9 < frac < 1 - 1e-9 else None
    return {"task": task, "order": order, "n": n, "alphabet": n + 1 if alphabet is None
            else alphabet, "prefix_classes": f"2^{lg:.6f}", "exact": small.exact,
            "bits_needed": bits, "log2_prefix_classes": round(lg, 6),
            "argument": small.argument, "formula": small.formula, "float_estimate": True,
            "note": "P(n) not expanded (too large); log2 from the closed form in floating point"}


DEFAULT_ROWS: tuple[tuple[str, str], ...] = (
    ("index", "query-last"), ("index", "query-first"), ("ar", "query-last"),
    ("ar", "query-first"), ("cgram", "query-last"), ("cgram", "query-first"),
    ("counting", "query-last"), ("counting", "query-first"), ("counting-exact", "query-last"),
    ("counting-exact", "query-first"), ("istree", "stream"),
)

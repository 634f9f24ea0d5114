"""rnngap: executable theory of *RNNs are not Transformers (Yet): The Key Bottleneck on
In-Context Retrieval* (Wen, Dang, Lyu; ICLR 2025, arXiv:2402.18510).

Rooms: ``tasks`` (what is asked), ``models`` (architectures, pluggable arithmetic),
``constructions`` (weights from proofs), ``learned`` (weights from data), ``verify`` (exact checks
and bounds), ``paper_refs`` (the claims ledger), ``commands`` + ``cli`` (the command line).
Nothing heavy is imported here, so ``rnngap --help`` stays fast.
"""

__version__ = "0.1.0"

"""Verifiers of the retrieval constructions (Transformer and hybrid), one per task family."""

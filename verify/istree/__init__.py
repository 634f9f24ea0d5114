"""Verifiers of the IsTree constructions, what they share, and the method records of `verify
istree`."""

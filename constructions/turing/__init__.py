"""Turing machines compiled to a bit-bounded RNN with regex retrieval, and the built-in machines."""

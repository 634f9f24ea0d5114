"""Hand-set IsTree deciders: the Transformer with CoT, the linear-RNN hybrid, the finite-state
hybrid, the RNN with retrieval, and their shared exact heads."""

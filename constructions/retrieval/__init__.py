"""Hand-set constructions for the four retrieval tasks (Index, AR, c-gram, Counting): Transformers,
linear-RNN hybrids, the RNN + AR oracle."""

"""paper_refs room of rnngap (see the top-level package docstring)."""

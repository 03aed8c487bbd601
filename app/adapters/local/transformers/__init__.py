"""The transformers (torch) engine, split by reason to change: the engine, batching, weights,
the fast int4 decode path, and GGUF conversion with its cache."""

"""What the tests share, and the benchmarks use too: corpora built like the real ones,
small models and batches, the lesson's reference model."""

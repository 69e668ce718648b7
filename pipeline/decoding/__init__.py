"""Decoding: greedy and beam search, ensembles, translating raw text."""

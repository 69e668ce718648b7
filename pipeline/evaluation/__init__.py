"""Evaluation: losses, BLEU and chrF, the search check, significance tests, comparisons,
plots, the metrics gate."""

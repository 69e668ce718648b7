"""Stage evaluate@VARIANT: losses, BLEU and chrF of greedy and beam search on the validation
and test sets, the searches checked against the model, the translations scored, samples and
heatmaps (pipeline/evaluation/report.py)."""

import sys
from pathlib import Path

from pipeline.errors import run_main
from pipeline.evaluation.report import EvalPaths, evaluate_variant
from pipeline.params import load_params

PATHS = EvalPaths(
    ids="data/processed/ids.parquet",
    tokens="data/interim/tokens.parquet",
    questions="data/interim/questions.parquet",
    models=Path("models"),
    metrics="metrics/{variant}.json",
    reports=Path("reports"),
    outside="outside/questions.tsv",
)

if __name__ == "__main__":
    run_main(lambda: evaluate_variant(sys.argv[1], load_params(), PATHS))

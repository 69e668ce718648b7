"""Stage train@VARIANT: train one variant; resumes from its checkpoint if it was killed, on
one process or runtime.processes of them (pipeline/training/run.py)."""

import sys
from pathlib import Path

from pipeline.errors import run_main
from pipeline.params import load_params
from pipeline.training.run import TrainPaths, run_variant

PATHS = TrainPaths(
    processed="data/processed",
    tokens="data/interim/tokens.parquet",
    questions="data/interim/questions.parquet",
    models=Path("models"),
    checkpoints=Path("checkpoints"),
    dvclive=Path("dvclive"),
)

if __name__ == "__main__":
    variant = sys.argv[1]  # several processes: each is this script again
    run_main(lambda: run_variant(variant, load_params(), PATHS,
                                 [sys.executable, "-m", "stages.train", variant]))

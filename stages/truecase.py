"""Stage truecase: each English word's usual case, learned from the training pairs' original
English (pipeline/data/truecase.py); the train stage puts it in every model directory."""

import pandas as pd

from pipeline.data.truecase import train_truecaser
from pipeline.errors import run_main
from pipeline.files import write_json

QUESTIONS = "data/interim/questions.parquet"
IDS = "data/processed/ids.parquet"
OUT = "data/processed/truecase_en.json"


def main() -> None:
    ids = pd.read_parquet(IDS, columns=["line", "split"])
    train_lines = set(ids.loc[ids["split"] == "train", "line"])
    questions = pd.read_parquet(QUESTIONS, columns=["en", "line"])
    english = questions.loc[questions["line"].isin(train_lines), "en"]
    cased = train_truecaser(english, total=len(english))
    write_json(OUT, cased)
    print(f"truecase: {len(cased):,} words with a usual form not all lowercase, from "
          f"{len(english):,} training sentences -> {OUT}"
          + (f" (e.g. {', '.join(list(cased.values())[:5])})" if cased else ""))


if __name__ == "__main__":
    run_main(main)

"""Stage subwords: SentencePiece models of the training text (the training questions and the
pool; never valid or test), the pieces' ids of the questions and the pool, and, where
embeddings.source is train, fastText vectors of the pieces (pipeline/data/subwords.py)."""

from pathlib import Path

import pandas as pd

from pipeline.data.subwords import build_pieces
from pipeline.errors import run_main
from pipeline.files import write_json
from pipeline.params import EmbeddingsParams, SubwordsParams, VocabParams, load_params, section

QUESTIONS = "data/interim/questions.parquet"
IDS = "data/processed/ids.parquet"
POOL = "data/processed/pool.parquet"
OUT = Path("data/processed/pieces")
METRICS = "metrics/subwords.json"


def main() -> None:
    params = load_params()
    p: SubwordsParams = section(params, "subwords", SubwordsParams)
    split = pd.read_parquet(IDS, columns=["line", "split"])
    questions = pd.read_parquet(QUESTIONS).merge(split, on="line")  # the tokenized ones
    built = build_pieces(questions, pd.read_parquet(POOL), p,
                         section(params, "vocab", VocabParams).max_len_percentile,
                         section(params, "embeddings", EmbeddingsParams))
    built.save(OUT)
    write_json(METRICS, built.stats)
    print(f"subwords: {p.type} pieces, {built.stats['fr']['vocab_size']:,} a model "
          f"({'joint' if p.joint else 'one per language'}); {len(built.pool_ids):,} pool "
          f"pairs within the length cut -> {OUT}")


if __name__ == "__main__":
    run_main(main)

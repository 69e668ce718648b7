"""Stage tokenize: spaCy tokens for both sides, pairs with long English dropped."""

import pandas as pd

from pipeline.data.tokenize import length_stats, tokenize_pairs, worker_count
from pipeline.errors import run_main
from pipeline.files import write_json, write_parquet
from pipeline.params import TokenizeParams, load_params, section

IN = "data/interim/questions.parquet"
OUT = "data/interim/tokens.parquet"
METRICS = "metrics/tokenize.json"


def main() -> None:
    p: TokenizeParams = section(load_params(), "tokenize", TokenizeParams)
    pairs = pd.read_parquet(IN)
    workers = worker_count(len(pairs), p)
    tokens = tokenize_pairs(pairs, p, workers)
    stats = length_stats(tokens)  # before the length cut, as the lesson printed them
    keep = tokens["en_tokens"].map(len) < p.max_en_tokens
    tokens = tokens[keep].reset_index(drop=True)
    write_parquet(OUT, tokens)
    write_json(METRICS, {"pairs_in": len(pairs), "pairs_kept": len(tokens), "workers": workers,
                         **stats})
    print(f"tokenize: {len(tokens):,} of {len(pairs):,} pairs kept ({workers} workers) -> {OUT}")


if __name__ == "__main__":
    run_main(main)

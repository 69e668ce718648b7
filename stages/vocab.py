"""Stage vocab: vocabularies (JSON), token ids and the train/valid split (Parquet)."""

import pandas as pd

from pipeline.files import run_main, write_json, write_parquet
from pipeline.params import VocabParams, load_params, section
from pipeline.vocab import build_ids

IN = "data/interim/tokens.parquet"
OUT_DIR = "data/processed"
METRICS = "metrics/vocab.json"


def main() -> None:
    p: VocabParams = section(load_params(), "vocab", VocabParams)
    vocabs, ids, stats = build_ids(pd.read_parquet(IN), p)
    for lang, itos in vocabs.items():
        write_json(f"{OUT_DIR}/vocab_{lang}.json", itos)
    write_parquet(f"{OUT_DIR}/ids.parquet", ids)
    write_json(METRICS, stats)
    print(f"vocab: fr {stats['fr_vocab_size']:,} en {stats['en_vocab_size']:,} tokens; "
          f"{stats['train_pairs']:,} train / {stats['valid_pairs']:,} valid pairs")


if __name__ == "__main__":
    run_main(main)

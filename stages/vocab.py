"""Stage vocab: the split (train, valid, test), vocabularies (JSON), token ids (Parquet), and
the data report (metrics/data.json: sizes, duplicates, what valid and test share with train)."""

from pipeline.data.vocab import build_ids, data_report, split_summary
from pipeline.errors import run_main
from pipeline.files import read_json, read_parquet_lists, write_json, write_parquet
from pipeline.params import VocabParams, load_params, section

IN = "data/interim/tokens.parquet"
OUT_DIR = "data/processed"
METRICS = "metrics/vocab.json"
REPORT = "metrics/data.json"
STAGES = {"corpus_lines": ("metrics/filter.json", "lines_read"),
          "filtered": ("metrics/filter.json", "pairs_kept"),
          "tokenized": ("metrics/tokenize.json", "pairs_kept")}


def main() -> None:
    p: VocabParams = section(load_params(), "vocab", VocabParams)
    tokens = read_parquet_lists(IN)
    vocabs, ids, stats = build_ids(tokens, p)
    for lang, itos in vocabs.items():
        write_json(f"{OUT_DIR}/vocab_{lang}.json", itos)
    write_parquet(f"{OUT_DIR}/ids.parquet", ids)
    write_json(METRICS, stats)
    report = data_report(tokens, ids["split"].to_numpy())
    stages = {k: read_json(path)[key] for k, (path, key) in STAGES.items()}
    write_json(REPORT, {"split": p.split, "stages": stages, **report})
    print(split_summary(p.split, stats, report))

if __name__ == "__main__":
    run_main(main)

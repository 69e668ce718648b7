"""Stage filter: keep the wh-question pairs of the corpus (the lesson's regexes)."""

from pipeline.data.corpus import filter_pairs
from pipeline.errors import run_main
from pipeline.files import write_json, write_parquet
from pipeline.params import FilterParams, load_params, section

CORPUS = "data/raw/corpus"  # the Giga-fren tarball or a Tatoeba zip
OUT = "data/interim/questions.parquet"
METRICS = "metrics/filter.json"


def main() -> None:
    p: FilterParams = section(load_params(), "filter", FilterParams)
    result = filter_pairs(CORPUS, p.en_regex, p.fr_regex)
    print(f"filter: read {result.source} of {CORPUS}")
    write_parquet(OUT, result.pairs)
    write_json(METRICS, {"lines_read": result.lines, "pairs_kept": len(result.pairs)})
    print(f"filter: kept {len(result.pairs):,} of {result.lines:,} line pairs -> {OUT}")


if __name__ == "__main__":
    run_main(main)

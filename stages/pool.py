"""Stage pool: the pairs the question filter rejects, guarded against valid and test, a seeded
sample of at most pool.size of them as training-only data (pipeline/data/pool.py)."""

import pandas as pd

from pipeline.data.corpus import line_pairs
from pipeline.data.pool import Guard, overlap, sample_pool, unseen_report
from pipeline.errors import run_main
from pipeline.files import read_json, write_json, write_parquet
from pipeline.params import PoolParams, load_params, section

CORPUS = "data/raw/corpus"
QUESTIONS = "data/interim/questions.parquet"
IDS = "data/processed/ids.parquet"
FILTERED = "metrics/filter.json"
OUT = "data/processed/pool.parquet"
METRICS = "metrics/pool.json"


def main() -> None:
    p: PoolParams = section(load_params(), "pool", PoolParams)
    split = pd.read_parquet(IDS, columns=["line", "split"]).set_index("line")["split"]
    questions = pd.read_parquet(QUESTIONS).pipe(lambda q: q.assign(split=q["line"].map(split)))
    held = questions[questions["split"].isin(["valid", "test"])]
    guard = Guard({"en": held["en"], "fr": held["fr"]})
    result = sample_pool(line_pairs(CORPUS), set(questions["line"]), guard, p,
                         total=read_json(FILTERED)["lines_read"])
    write_parquet(OUT, result.pairs)
    unseen = unseen_report(questions, result.pairs)
    write_json(METRICS, {**result.counts, "size": p.size,
                         "overlap": overlap(result.pairs, guard), "unseen_fr": unseen})
    c, u = result.counts, unseen["valid"]
    print(f"pool: {c['kept']:,} of the {c['rejected_by_filter']:,} pairs the filter rejected "
          f"-> {OUT}; the guard dropped {c['guard_equal'] + c['guard_contains']:,} of the "
          f"{c['guard_checked']:,} it checked; valid sentences with a French word training "
          f"never saw: {u['questions']:.1%} (questions), {u['questions_and_pool']:.1%} (and pool)")


if __name__ == "__main__":
    run_main(main)

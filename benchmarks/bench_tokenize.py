"""Tokenization speed with 1 and 2 worker processes.

    python benchmarks/bench_tokenize.py [--repeat 24]

Times `tokenize_pairs` on the shared corpus's 8,623 question pairs and on those pairs repeated
`--repeat` times (24 x 8,623 = 206,952), with 1 and with 2 workers, in one run; the time
includes starting the workers and writing and joining their Parquet shards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.corpus import SHARED_TARBALL  # noqa: E402

from pipeline.data.corpus import filter_pairs  # noqa: E402
from pipeline.data.tokenize import tokenize, tokenize_pairs, worker_count  # noqa: E402
from pipeline.params import FilterParams, TokenizeParams  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=24)
    args = ap.parse_args()
    f = FilterParams()
    pairs = filter_pairs(SHARED_TARBALL, f.en_regex, f.fr_regex).pairs
    big = pd.concat([pairs] * args.repeat, ignore_index=True)
    p = TokenizeParams()
    tokenize("Bonjour", "fr"), tokenize("Hello", "en")  # load spaCy once, outside the timing
    print(f"{os.cpu_count()} cores")
    for name, data in (("shared questions", pairs), (f"x{args.repeat}", big)):
        rates = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            tokenize_pairs(data, p, workers=workers, progress=False)
            rates[workers] = len(data) / (time.perf_counter() - t0)
            print(f"{name} ({len(data):,} pairs), {workers} worker(s): "
                  f"{rates[workers]:,.0f} pairs/s")
        print(f"{name}: 2 workers / 1 worker = {rates[2] / rates[1]:.2f}; "
              f"the stage would use {worker_count(len(data), p)} worker(s)")


if __name__ == "__main__":
    main()

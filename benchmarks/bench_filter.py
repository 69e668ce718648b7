"""Filter speed on a large tarball, side by side with `gzip -dc | grep -c -E`.

    python benchmarks/bench_filter.py [--repeat 12]

Builds, in a temporary folder, a tarball of the Giga-fren layout holding the shared Tatoeba
corpus repeated `--repeat` times (12 x 167,130 = 2,005,560 line pairs), then times in one run:
the filter stage's code (both members, in step, with the lesson's regexes) and the baseline
`gzip -dc EN_MEMBER | grep -c -E EN_REGEX` on the English member alone.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.corpus import SHARED_TARBALL  # noqa: E402

from pipeline.data.corpus import EN_MEMBER, FR_MEMBER, filter_pairs  # noqa: E402
from pipeline.params import FilterParams  # noqa: E402


def build(tmp: Path, repeat: int) -> tuple[Path, Path, int]:
    with tarfile.open(SHARED_TARBALL) as tar:
        members = {m: gzip.decompress(tar.extractfile(m).read()) for m in (EN_MEMBER, FR_MEMBER)}
    for name, data in members.items():
        (tmp / name).write_bytes(gzip.compress(data * repeat, compresslevel=6))
    big = tmp / "big.tar"
    with tarfile.open(big, "w") as tar:
        for name in members:
            tar.add(tmp / name, arcname=name)
    return big, tmp / EN_MEMBER, members[EN_MEMBER].count(b"\n") * repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=12)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    p = FilterParams()
    with tempfile.TemporaryDirectory() as d:
        big, en_member, lines = build(Path(d), args.repeat)
        print(f"tarball: {lines:,} line pairs, {big.stat().st_size / 2**20:.0f} MiB; "
              f"{os.cpu_count()} cores; LANG={os.environ.get('LANG', '')!r}")
        grep = f"gzip -dc {en_member} | grep -c -E '{p.en_regex}'"
        ours, base = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            t0 = time.perf_counter()
            r = filter_pairs(big, p.en_regex, p.fr_regex)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = subprocess.run(grep, shell=True, capture_output=True, text=True, check=True)
            base.append(time.perf_counter() - t0)
        o, b = min(ours), min(base)
        print(f"filter stage: {o:.2f} s, {lines / o:,.0f} lines/s, kept {len(r.pairs):,} pairs")
        print(f"baseline    : {b:.2f} s, {lines / b:,.0f} lines/s, grep counted "
              f"{int(out.stdout):,} English matches")
        print(f"ratio (baseline time / filter time): {b / o:.2f}")


if __name__ == "__main__":
    main()

"""benchmarks/bench_full_size.py: a corpus in Giga-fren's layout, made from the shared one,
whose questions are Giga-fren's share and whose vocabulary grows with its lines (issue 53)."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.corpus import ROOT, SHARED_TARBALL

from pipeline.data.corpus import EN_MEMBER, FR_MEMBER, filter_pairs
from pipeline.params import FilterParams


def make(out: Path, lines: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_full_size.py"),
                           "--lines", str(lines), "--out", str(out), *extra],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_the_layout_the_questions_and_a_growing_vocabulary(tmp_path: Path) -> None:
    if not SHARED_TARBALL.exists():
        pytest.skip(f"shared tarball not found at {SHARED_TARBALL}")
    r = make(tmp_path, 200_000)
    assert r.returncode == 0, r.stderr
    tar_path = tmp_path / "training-giga-fren.tar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training-giga-fren.tar"]
    with tarfile.open(tar_path) as tar:  # the real tarball's members, in its order
        assert tar.getnames() == [EN_MEMBER, FR_MEMBER]
        en, fr = (gzip.decompress(tar.extractfile(m).read()) for m in (EN_MEMBER, FR_MEMBER))
    assert en.count(b"\n") == fr.count(b"\n") == 200_000 and b"\r" not in en + fr
    en.decode("utf-8"), fr.decode("utf-8")
    # Giga-fren's question share, through the filter stage's own code
    kept = len(filter_pairs(tar_path, FilterParams.en_regex, FilterParams.fr_regex).pairs)
    assert 0.0015 < kept / 200_000 < 0.0025, kept
    # lines about as long as Giga-fren's: 2.3 GB of gzip for 22.5M pairs, about 100 bytes each
    assert 70 < tar_path.stat().st_size / 200_000 < 130
    # the vocabulary still grows in the last tenth, and the same seed makes the same bytes
    rows = [line for line in r.stdout.splitlines() if line[:3].strip("| ").isdigit()]
    types = [int(row.split("|")[2].replace(",", "")) for row in rows]
    assert len(types) == 10 and types == sorted(types) and types[-1] > types[-2]
    assert make(tmp_path / "again", 200_000).returncode == 0
    assert (tmp_path / "again/training-giga-fren.tar").read_bytes() == tar_path.read_bytes()


def test_bad_values_are_one_line(tmp_path: Path) -> None:
    r = make(tmp_path, 0)
    assert r.returncode == 1 and r.stderr.strip() == "error: --lines 0: must be 1 or more"
    r = make(tmp_path, 10, "--tarball", str(tmp_path / "nope.tar"))
    assert r.returncode == 1 and r.stderr.strip().startswith(f"error: {tmp_path / 'nope.tar'}")

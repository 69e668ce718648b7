"""A corpus of Giga-fren's size, made here from the shared Tatoeba tarball (issue 53).

    python benchmarks/bench_full_size.py --out DIR                 # 22,520,376 line pairs
    python benchmarks/bench_full_size.py --lines 2252037 --out DIR # a tenth

Writes DIR/training-giga-fren.tar in the real tarball's layout: its two members at the root,
`giga-fren.release2.fixed.en.gz` then `.fr.gz`, gzip text, UTF-8, LF ends, line N of one the
translation of line N of the other. Its text is the shared corpus's real French and English,
recombined so that it behaves like a large corpus where the stages care:
- a line that is not a question joins one to eight of the corpus's other pairs (four on
  average), so that lines are about as long as Giga-fren's and many exceed pool.max_words;
- questions (pairs the lesson's filter keeps) are 0.2% of the lines, Giga-fren's share (about
  45k of 22.5M); the rest are the corpus's other pairs;
- the vocabulary keeps growing with the lines, as a real corpus's does (Heaps' law), rather
  than stopping at Tatoeba's: a pair holding the same capitalized word on both sides (a name:
  Tom, Mary, Boston) gets a made-up name in its place in half the lines, and a number joins
  both sides of a quarter of the non-questions, both drawn from Zipf distributions over
  unbounded sets, so that new types keep coming, fewer per line as lines go by.
It prints the types (distinct whitespace-separated words) per side at each tenth of the
lines, beside the shared corpus's own. Streamed: memory holds the shared corpus and the set
of types, not the output. Data of your own making: never commit it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.corpus import SHARED_TARBALL  # noqa: E402

from pipeline.data.corpus import EN_MEMBER, FR_MEMBER, filter_lines, line_pairs  # noqa: E402
from pipeline.params import FilterParams  # noqa: E402

GIGA_FREN_LINES = 22_520_376
QUESTION_SHARE = 0.002
CHUNK = 100_000
# Giga-fren's lines are web pages' sentences, longer than Tatoeba's: about 100 bytes of gzip
# per line pair (2.3 GB / 22.5M), where a Tatoeba pair takes about 19; a line of other pairs
# joins 1 to JOINED of them, JOINED_MEAN on average
JOINED, JOINED_MEAN = 8, 4
SYLLABLES = ("ka ri mo la te su ven dor ax bel cor fin gal hu jo lem nor pa qui ros sa "
             "tal ul vik wen yo zar").split()
CAPITALIZED = re.compile(r"\b([A-Z][a-z]{2,})\b")


def shared_pairs(tarball: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The shared corpus's (English, French) pairs: those the lesson's filter keeps (the
    filter stage's own loop), and the others."""
    pairs = [(en, fr) for _, en, fr in line_pairs(tarball)]
    kept = {line for line, _, _ in filter_lines([e for e, _ in pairs], [f for _, f in pairs],
                                                FilterParams.en_regex, FilterParams.fr_regex)}
    questions = [p for line, p in enumerate(pairs, 1) if line in kept]
    others = [p for line, p in enumerate(pairs, 1) if line not in kept]
    return questions, others


def made_up_name(k: int) -> str:
    """The k-th made-up name (k >= 1): syllables, as k's digits in base len(SYLLABLES)."""
    parts = []
    while k:
        k, d = divmod(k, len(SYLLABLES))
        parts.append(SYLLABLES[d])
    return "".join(parts).capitalize()


def shared_name(pair: tuple[str, str], patterns: dict[str, re.Pattern]) -> re.Pattern | None:
    """A whole-word pattern of the pair's first capitalized word that both sides hold."""
    for word in CAPITALIZED.findall(pair[0]):
        rx = patterns.setdefault(word, re.compile(rf"\b{word}\b"))
        if rx.search(pair[1]):
            return rx
    return None


def generate(lines: int, seed: int, questions: list, others: list):
    """The line pairs, in chunks of CHUNK at most: (list of English, list of French)."""
    rng = np.random.default_rng(seed)
    patterns: dict[str, re.Pattern] = {}
    names = ([shared_name(p, patterns) for p in others],
             [shared_name(p, patterns) for p in questions])
    chunk = min(CHUNK, max(1, lines // 10))  # a tenth at most: the table's rows
    for start in range(0, lines, chunk):
        n = min(chunk, lines - start)
        is_q = rng.random(n) < QUESTION_SHARE
        picks = rng.integers(0, len(others), (n, JOINED))  # a line of up to JOINED pairs
        picks[:, 0] = np.where(is_q, rng.integers(0, len(questions), n), picks[:, 0])
        joined = np.where(is_q, 1, np.minimum(1 + rng.poisson(JOINED_MEAN - 1, n), JOINED))
        new_names = np.where(rng.random(n) < 0.5, rng.zipf(1.6, n), 0)
        numbers = np.where(~is_q & (rng.random(n) < 0.25), rng.zipf(1.4, n), 0)
        en, fr = [], []
        for q, ks, m, name, number in zip(is_q.tolist(), picks.tolist(), joined.tolist(),
                                          new_names.tolist(), numbers.tolist()):
            if q:
                e, f = questions[ks[0]]
            else:
                e = " ".join(others[k][0] for k in ks[:m])
                f = " ".join(others[k][1] for k in ks[:m])
            rx = names[q][ks[0]]
            if name and rx is not None:  # a made-up name in place of the shared one
                new = made_up_name(name)
                e, f = rx.sub(new, e), rx.sub(new, f)
            if number:
                e, f = f"{e} ({number})", f"{f} ({number})"
            en.append(e)
            fr.append(f)
        yield en, fr


def gz_text(path: Path) -> io.TextIOWrapper:
    """A gzip text file whose bytes depend on its text alone (no name or time in its header)."""
    raw = gzip.GzipFile(filename="", mode="wb", compresslevel=6, mtime=0,
                        fileobj=open(path, "wb"))  # noqa: SIM115 (closed with the wrapper)
    raw.myfileobj = raw.fileobj  # GzipFile closes a file it was given only as its own
    return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")


def types_of(lines: list[str], seen: set[str]) -> None:
    for line in lines:
        seen.update(line.split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=GIGA_FREN_LINES,
                    help=f"line pairs (default {GIGA_FREN_LINES:,}, Giga-fren's)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the tarball")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tarball", type=Path, default=SHARED_TARBALL,
                    help="the shared Tatoeba tarball (default ../shared/data/..., or "
                    "$FREN_NMT_TARBALL)")
    args = ap.parse_args()
    if args.lines < 1:
        sys.exit(f"error: --lines {args.lines}: must be 1 or more")
    if not args.tarball.is_file():
        sys.exit(f"error: {args.tarball}: no such file (set FREN_NMT_TARBALL or --tarball)")
    args.out.mkdir(parents=True, exist_ok=True)
    questions, others = shared_pairs(args.tarball)
    base = {"en": set(), "fr": set()}
    types_of([e for e, _ in questions + others], base["en"])
    types_of([f for _, f in questions + others], base["fr"])
    n_shared = len(questions) + len(others)
    print(f"shared corpus: {n_shared:,} pairs, {len(questions):,} questions; types en "
          f"{len(base['en']):,}, fr {len(base['fr']):,}")

    start = time.perf_counter()
    parts = {m: args.out / (m + ".part") for m in (EN_MEMBER, FR_MEMBER)}
    seen = {"en": set(), "fr": set()}
    marks = {round(args.lines * k / 10) for k in range(1, 11)}
    done = 0
    print("| lines | types en | types fr | new types en per 1M lines, last tenth |")
    print("|---:|---:|---:|---:|")
    last = (0, 0)
    with gz_text(parts[EN_MEMBER]) as gen, gz_text(parts[FR_MEMBER]) as gfr:
        for en, fr in generate(args.lines, args.seed, questions, others):
            gen.write("\n".join(en) + "\n")
            gfr.write("\n".join(fr) + "\n")
            types_of(en, seen["en"])
            types_of(fr, seen["fr"])
            done += len(en)
            if any(done - len(en) < m <= done for m in marks):
                rate = (len(seen["en"]) - last[1]) / max(done - last[0], 1) * 1e6
                print(f"| {done:,} | {len(seen['en']):,} | {len(seen['fr']):,} | {rate:,.0f} |",
                      flush=True)
                last = (done, len(seen["en"]))
    tar_part = args.out / "training-giga-fren.tar.part"
    with tarfile.open(tar_part, "w", format=tarfile.GNU_FORMAT) as tar:
        for member in (EN_MEMBER, FR_MEMBER):  # the real tarball's order
            info = tar.gettarinfo(parts[member], arcname=member)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            with open(parts[member], "rb") as f:
                tar.addfile(info, f)
    for p in parts.values():
        p.unlink()
    out = args.out / "training-giga-fren.tar"
    os.replace(tar_part, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {args.lines:,} line pairs) in "
          f"{time.perf_counter() - start:.0f} s; the shared corpus: "
          f"{len(base['en']) / n_shared * 1e6:,.0f} English types per million lines")


if __name__ == "__main__":
    main()

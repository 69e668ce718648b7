"""PyTorch against CTranslate2 (fp32 and int8) in one run, greedy and beam search: sentences a
second in batches (start-up apart) and greedy one sentence at a time (p50/p95 latency), BLEU
of the printed text, and how many outputs are PyTorch's exactly.

    python benchmarks/bench_ctranslate2.py --model models/transformer [--threads 1 2]

It exports the model twice (float32 and int8, into a temporary folder), then runs each engine
in a process of its own: the test set's French --repeat times (850 x 6 = 5,100 lines on
Tatoeba), in batches of --batch-size sorted by length as `fren-nmt translate` makes them,
greedy and beam --beam (GNMT's penalty, evaluate's alpha), each timed apart from loading the
model (start-up, reported beside); then the first --single sentences one at a time, greedy.
Threads: each count of --threads for every engine (PyTorch's intra-op threads; CTranslate2's
intra_threads, with one translator: one client's batches come one at a time), each ratio
against PyTorch at the same count and search.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ENGINES = ("pytorch", "ctranslate2 float32", "ctranslate2 int8")


def test_sentences(ids: str, questions: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    from pipeline.data.batches import load_splits

    _, _, test = load_splits(ids)
    q = pd.read_parquet(questions).set_index("line")
    return ([str(q.at[line, "fr"]) for line in test.lines],
            [str(q.at[line, "en"]) for line in test.lines])


def one_engine(args: argparse.Namespace) -> None:
    """In a process of its own: load, translate, time, and print one JSON line."""
    import torch

    from pipeline.decoding.ctranslate import CT2Translator
    from pipeline.decoding.translate import Translator

    torch.set_num_threads(args.threads[0])
    sources, _ = test_sentences(args.ids, args.questions)
    t0 = time.perf_counter()
    tr = (Translator(args.model) if args.engine == "pytorch"
          else CT2Translator(args.model, threads=args.threads[0]))
    out = {"engine": args.engine, "load_s": time.perf_counter() - t0}
    tr.translate(sources[:32], beam_size=args.beam)  # warm-up
    for search, beam in (("greedy", 1), ("beam", args.beam)):
        t0 = time.perf_counter()
        lines = tr.translate(sources * args.repeat, batch_size=args.batch_size, beam_size=beam)
        seconds = time.perf_counter() - t0
        out[search] = {"lines": lines[:len(sources)], "seconds": seconds,
                       "per_s": len(lines) / seconds,
                       "repeats_agree": lines == lines[:len(sources)] * args.repeat}
    latencies = []
    for s in sources[:args.single]:
        t0 = time.perf_counter()
        tr.translate([s], batch_size=1)
        latencies.append(time.perf_counter() - t0)
    q = statistics.quantiles(latencies, n=100)
    out["single"] = {"per_s": len(latencies) / sum(latencies), "p50_ms": 1000 * q[49],
                     "p95_ms": 1000 * q[94]}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/transformer")
    ap.add_argument("--ids", default="data/processed/ids.parquet")
    ap.add_argument("--questions", default="data/interim/questions.parquet")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=6, help="the test set this many times")
    ap.add_argument("--batch-size", type=int, default=64, help="translate's default: 64")
    ap.add_argument("--beam", type=int, default=5, help="the beam search's size (5)")
    ap.add_argument("--single", type=int, default=200, help="sentences timed one at a time")
    ap.add_argument("--engine", help=argparse.SUPPRESS)  # one engine, in a child process
    args = ap.parse_args()
    if args.engine:
        one_engine(args)
        return

    import sacrebleu

    from pipeline.models.export import export

    sources, refs = test_sentences(args.ids, args.questions)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"pytorch": args.model}
        for quantization in ("float32", "int8"):
            dirs[f"ctranslate2 {quantization}"] = str(
                export(args.model, Path(tmp) / quantization, quantization))
        for threads in args.threads:
            for engine in ENGINES:
                out = subprocess.run(
                    [sys.executable, __file__, "--engine", engine, "--model", dirs[engine],
                     "--ids", args.ids, "--questions", args.questions, "--threads",
                     str(threads), "--repeat", str(args.repeat), "--batch-size",
                     str(args.batch_size), "--beam", str(args.beam), "--single",
                     str(args.single)], capture_output=True, text=True, check=True).stdout
                results[engine, threads] = json.loads(out.strip().splitlines()[-1])
    n = len(sources) * args.repeat
    print(f"{len(sources)} test sentences x {args.repeat} = {n} lines, batches of "
          f"{args.batch_size}; model {args.model}; beam {args.beam}")
    print("| engine | threads | search | BLEU | chrF | outputs equal to PyTorch's | "
          "seconds | sentences/s | x PyTorch | start-up |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for (engine, threads), r in results.items():
        for search in ("greedy", "beam"):
            base = results["pytorch", threads][search]
            mine = r[search]
            same = sum(a == b for a, b in zip(mine["lines"], base["lines"]))
            bleu = sacrebleu.corpus_bleu(mine["lines"], [refs]).score
            chrf = sacrebleu.corpus_chrf(mine["lines"], [refs]).score
            print(f"| {engine} | {threads} | {search} | {bleu:.2f} | {chrf:.2f} | {same} of "
                  f"{len(sources)} | {mine['seconds']:.1f} | {mine['per_s']:.1f} | "
                  f"{mine['per_s'] / base['per_s']:.2f} | {r['load_s']:.1f} s |"
                  + ("" if mine["repeats_agree"] else " (repeats differ)"), flush=True)
    print("\nGreedy, one sentence at a time:")
    print("| engine | threads | sentences/s | x PyTorch | p50 | p95 |")
    print("|---|---:|---:|---:|---:|---:|")
    for (engine, threads), r in results.items():
        base = results["pytorch", threads]["single"]
        s = r["single"]
        print(f"| {engine} | {threads} | {s['per_s']:.1f} | {s['per_s'] / base['per_s']:.2f} | "
              f"{s['p50_ms']:.1f} ms | {s['p95_ms']:.1f} ms |")


if __name__ == "__main__":
    main()

"""PyTorch against CTranslate2 (fp32 and int8) on the test set, in one run: sentences a
second in batches and one at a time (p50/p95 latency), peak memory, BLEU of the printed text,
and how many outputs are PyTorch's exactly.

    python benchmarks/bench_ctranslate2.py --model models/transformer [--threads 1 2]

It exports the model twice (float32 and int8, into a temporary folder), then runs each engine
in a process of its own (so each one's peak memory is its own): greedy search over the test
set's French, batches of 32 sorted by length as `fren-nmt translate` makes them, then the
first --single sentences one at a time. Threads: each count of --threads for every engine
(PyTorch's intra-op threads; CTranslate2's intra_threads, with one translator: one client's
batches come one at a time), each ratio against PyTorch at the same count.
"""

from __future__ import annotations

import argparse
import json
import resource
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
    """In a process of its own: translate, time, and print one JSON line."""
    import torch

    from pipeline.decoding.ctranslate import CT2Translator
    from pipeline.decoding.translate import Translator

    torch.set_num_threads(args.threads[0])
    sources, _ = test_sentences(args.ids, args.questions)
    t0 = time.perf_counter()
    tr = (Translator(args.model) if args.engine == "pytorch"
          else CT2Translator(args.model, threads=args.threads[0]))
    load = time.perf_counter() - t0
    tr.translate(sources[:32])  # warm-up
    t0 = time.perf_counter()
    lines = tr.translate(sources, batch_size=32)
    batched = time.perf_counter() - t0
    latencies = []
    for s in sources[:args.single]:
        t0 = time.perf_counter()
        tr.translate([s], batch_size=1)
        latencies.append(time.perf_counter() - t0)
    q = statistics.quantiles(latencies, n=100)
    print(json.dumps({"engine": args.engine, "lines": lines, "load_s": load,
                      "batched_per_s": len(sources) / batched,
                      "single_per_s": len(latencies) / sum(latencies),
                      "p50_ms": 1000 * q[49], "p95_ms": 1000 * q[94],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/transformer")
    ap.add_argument("--ids", default="data/processed/ids.parquet")
    ap.add_argument("--questions", default="data/interim/questions.parquet")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
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
                     str(threads), "--single", str(args.single)],
                    capture_output=True, text=True, check=True).stdout
                results[engine, threads] = json.loads(out.strip().splitlines()[-1])
    print(f"{len(sources)} test sentences, greedy; model {args.model}")
    print("| engine | threads | BLEU | chrF | outputs equal to PyTorch's | sentences/s, "
          "batches of 32 | x PyTorch | sentences/s, one at a time | x PyTorch | p50 | p95 | "
          "peak memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (engine, threads), r in results.items():
        base = results["pytorch", threads]
        same = sum(a == b for a, b in zip(r["lines"], base["lines"]))
        bleu = sacrebleu.corpus_bleu(r["lines"], [refs]).score
        chrf = sacrebleu.corpus_chrf(r["lines"], [refs]).score
        print(f"| {engine} | {threads} | {bleu:.2f} | {chrf:.2f} | {same} of {len(sources)} "
              f"({100 * same / len(sources):.1f}%) | {r['batched_per_s']:.1f} | "
              f"{r['batched_per_s'] / base['batched_per_s']:.2f} | {r['single_per_s']:.1f} | "
              f"{r['single_per_s'] / base['single_per_s']:.2f} | {r['p50_ms']:.1f} ms | "
              f"{r['p95_ms']:.1f} ms | {r['peak_rss_mb']:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()

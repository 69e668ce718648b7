"""How runtime.bucket trades padded steps for CUDA graphs, on real data, without a GPU.

    dvc repro vocab                                # the ids of the training split
    python benchmarks/bench_buckets.py [--ids data/processed/ids.parquet] [--sizes 1 2 4 8]

A captured step holds one shape, so CapturedSteps pads every batch to lengths that are
multiples of runtime.bucket: one graph per (batch size, source length, target length, forcing
mode). This replays the training batches of every epoch exactly as `fit` draws them (the
sortish order and the teacher-forcing draws, from the seeds) for each bucket size and prints
the graphs a run would capture and the encoder and decoder steps it would run, as multiples of
the unpadded ones. The forcing schedule is the params' and, since it makes the most shapes, the
lesson's (pr_force falling from 1 to 0, which mixes forced and free steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data.batches import load_splits  # noqa: E402
from pipeline.params import load_params, variant_configs  # noqa: E402
from pipeline.training.cuda_graphs import bucket, force_mode  # noqa: E402
from pipeline.training.optimizer import pr_force  # noqa: E402


def replay(train, cfg, size: int) -> tuple[int, float, float]:  # noqa: ANN001
    keys, steps, padded, src, src_padded = set(), 0, 0, 0, 0
    cap_s, cap_t = train.max_lengths()  # CapturedSteps' cap: the longest are not padded
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        coin = random.Random(cfg.seed * 1_000_003 + epoch)
        pr = pr_force(epoch, cfg)
        for b in train.sortish(cfg.batch_size, rng):
            s, t = b.src.size(1), b.tgt.size(1)
            force = [coin.random() < pr for _ in range(t)]
            bs, bt = bucket(s, size, cap_s), bucket(t, size, cap_t)
            keys.add((b.src.size(0), bs, bt, force_mode(force)))
            steps, padded = steps + t, padded + bt
            src, src_padded = src + s, src_padded + bs
    return len(keys), src_padded / src, padded / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", default="data/processed/ids.parquet")
    ap.add_argument("--variant", default="teacher_forcing")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1, 2, 4, 8])
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[16, 125])
    args = ap.parse_args()
    train, _, _ = load_splits(args.ids)
    _, cfg = variant_configs(load_params("params.yaml"), args.variant)
    print(f"{len(train):,} training pairs, {args.variant}, {cfg.epochs} epochs")
    print("| forcing | batch | bucket | graphs | encoder steps | decoder steps |")
    print("|---|---:|---:|---:|---:|---:|")
    schedules = {"params": cfg, "lesson (1 -> 0)": dataclasses.replace(
        cfg, teacher_forcing=True, pr_force_start=1.0, pr_force_end=0.0)}
    for name, c in schedules.items():
        for bs in args.batch_sizes:
            for size in args.sizes:
                graphs, enc, dec = replay(train, dataclasses.replace(c, batch_size=bs), size)
                print(f"| {name} | {bs} | {size} | {graphs} | x{enc:.3f} | x{dec:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()

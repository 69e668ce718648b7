"""Training-step speed of each variant at the lesson's sizes: project vs the lesson's way.

    python benchmarks/bench_train.py [--steps 3] [--device cpu|cuda] [--variants ...]
                                     [--precisions fp32 bf16]

One step = forward, loss, backward, optimizer, on random token ids: batch 125, source length
30, target length 25, vocabularies 24,793 (fr) / 17,573 (en), embeddings 300, hidden 256,
2 layers. The reference (tests/support/reference.py) and the project's path run the same model
with the same parameters, interleaved step by step in one process so both see the same
machine load; the table gives the median time per step, tokens per second and the time of
an epoch of 45,219 pairs. On CUDA the project's step is timed twice: eager, and captured
(pipeline.training.cuda_graphs.CapturedSteps: the whole step replayed as one CUDA graph, as training
runs it:
the default runtime.bucket, so lengths 30 and 25 are padded to 32 and 28, and TF32 as fit
sets it); the first WARMUP steps of every way are not timed (the captured way warms up, then
captures).
The transformer variant has no lesson-style reference: its rows give its own time, to hold
against the GRU variants' in the same run.
Teacher-forcing variants draw mixed forcing at pr 0.5 (--pr-force), which is the costliest
mode: every step is projected to pick its argmax.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too
from support.reference import reference_step  # noqa: E402

from pipeline.data.batches import Batch  # noqa: E402
from pipeline.models.build import build_model  # noqa: E402
from pipeline.params import (  # noqa: E402
    load_params,
    variant_configs,
    variant_names,
    variant_runtime,
)
from pipeline.training.cuda_graphs import CapturedSteps  # noqa: E402
from pipeline.training.optimizer import make_optimizer, set_lr  # noqa: E402
from pipeline.training.step import train_step  # noqa: E402

B, S, T, V_FR, V_EN, EMB, PAIRS = 125, 30, 25, 24_793, 17_573, 300, 45_219
WARMUP = 5  # untimed CUDA steps per way: allocators, cuDNN plans, the captured way's capture


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per way (after 1 warm-up)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", nargs="*", default=variant_names())
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"])
    ap.add_argument("--pr-force", type=float, default=0.5,
                    help="teacher-forcing probability of the variants that use it")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":  # as fit() sets them, from runtime.tf32 (default true)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() \
        or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print("| variant | way | ms/step | tokens/s | epoch (45,219 pairs) | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, V_FR, (B, S), generator=g).to(device)
    src_len = torch.full((B,), S, dtype=torch.long).to(device)
    tgt = torch.randint(4, V_EN, (B, T), generator=g).to(device)
    for variant in args.variants:
        mcfg, tcfg = variant_configs(params, variant)
        draws = torch.rand(T, generator=torch.Generator().manual_seed(1)) < args.pr_force
        force = draws.tolist() if tcfg.teacher_forcing else [False] * T
        torch.manual_seed(0)
        ref_model = build_model(mcfg, V_FR, V_EN, EMB).to(device).train()
        ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-4)  # the default Adam
        ways = {}
        if mcfg.kind == "gru":  # the reference is the lesson's GRU loop; none for a transformer
            ways["reference"] = lambda m=ref_model, o=ref_opt, f=force: reference_step(
                m, o, src, src_len, tgt, f)
        for precision in args.precisions:
            if device.type == "cuda" and precision == "bf16" and mcfg.kind == "gru":
                continue  # refused by training on CUDA (fit): cuDNN's GRUs would run in fp16
            cfg = type(tcfg)(**{**tcfg.__dict__, "precision": precision, "lr": 1e-4})
            torch.manual_seed(0)
            m = build_model(mcfg, V_FR, V_EN, EMB).to(device).train()
            opt = make_optimizer(m, cfg, device)
            ways[f"project {precision}"] = (
                lambda m=m, o=opt, c=cfg, f=force: train_step(m, Batch(src, src_len, tgt, None),
                                                              o, c, device, f))
            if device.type == "cuda":
                torch.manual_seed(0)
                m = build_model(mcfg, V_FR, V_EN, EMB).to(device).train()
                opt = make_optimizer(m, cfg, device)
                set_lr(opt, cfg.lr)
                steps = CapturedSteps(m, opt, cfg, device,
                                      bucket=variant_runtime(params, variant).bucket)
                host = Batch(src.cpu().pin_memory(), src_len.cpu().pin_memory(),
                             tgt.cpu().pin_memory(), None)
                ways[f"project {precision} captured"] = (
                    lambda s=steps, h=host, f=force: s(h, f))
        times: dict[str, list[float]] = {k: [] for k in ways}
        warmup = WARMUP if device.type == "cuda" else 1
        for step in range(args.steps + warmup):
            for way, fn in ways.items():
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if step >= warmup:
                    times[way].append(time.perf_counter() - t0)
        ref = statistics.median(times["reference"]) if "reference" in times else None
        for way, ts in times.items():
            t = statistics.median(ts)
            epoch = t * math.ceil(PAIRS / B)
            print(f"| {variant} | {way} | {t * 1e3:.0f} | {B * T / t:,.0f} | {epoch:.0f} s | "
                  f"{f'{ref / t:.2f}x' if ref else '-'} |", flush=True)


if __name__ == "__main__":
    main()

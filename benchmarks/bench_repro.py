"""Wall time of whole trainings: the lesson's reproduction and the default run.

    python benchmarks/bench_repro.py lesson    [--device cpu|cuda] [--fraction F] [--variants ...]
    python benchmarks/bench_repro.py processed [--device cpu|cuda] [--fraction F] [--data DIR]

lesson:    the lesson's sizes with token ids this script makes (seeded): 45,219 training and
           5,041 validation pairs, vocabularies 24,793 (fr) / 17,573 (en) plus the 4 specials,
           French lengths 3-30 and English 3-25 tokens (uniform), batch 125, each variant's
           epochs from params.yaml (12/12/12/15/15). Embeddings random.
processed: the default params on a processed data folder (`dvc repro subwords embeddings`
           makes data/processed: of the shared Tatoeba tarball, or of Giga-fren's size with
           benchmarks/bench_full_size.py), training as the train stage runs it (words or
           pieces, the questions `question_repeats` times and the pool's slice an epoch),
           then evaluation (both validation losses, greedy and beam BLEU), as the evaluate
           stage runs them. Until 2026-12-07 this mode was called `tatoeba` and left the pool
           out.

Training runs `pipeline.training.train.fit` (captured CUDA graphs on CUDA, as the pipeline
trains, shaped by the longest question and pool pair) for one epoch of `fraction` of the
training and validation pairs (and of the pool's slice); the figure for the whole run is
(that epoch's time / fraction + one greedy pass over the validation set, which train.keep's
scores make after every epoch) x the variant's epochs (--fraction 1 times a real epoch).
Variants run one after another in this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.batches import Split  # noqa: E402
from pipeline.evaluation.metrics import validation_loss  # noqa: E402
from pipeline.models.build import build_model  # noqa: E402
from pipeline.params import (  # noqa: E402
    EvaluateParams,
    TrainConfig,
    load_params,
    section,
    variant_configs,
    variant_names,
    variant_runtime,
)
from pipeline.runtime import pick_device, set_threads  # noqa: E402
from pipeline.training.prepare import prepare  # noqa: E402
from pipeline.training.train import Checkpointing, TrainingRun, fit  # noqa: E402

TRAIN, VALID, V_FR, V_EN = 45_219, 5_041, 24_793 + 4, 17_573 + 4


def synthetic(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    fr = [rng.integers(4, V_FR, rng.integers(3, 31)) for _ in range(n)]
    en = [rng.integers(4, V_EN, rng.integers(3, 26)) for _ in range(n)]
    return Split(pd.DataFrame({"fr_ids": fr, "en_ids": en, "line": range(n)}))


def subset(split: Split, fraction: float) -> Split:
    """A random share of the split (the Tatoeba rows are sorted by length: a prefix would be
    the shortest sentences)."""
    n = max(1, round(len(split) * fraction))
    rows = np.random.default_rng(0).permutation(len(split))[:n]
    return Split.join([(split, rows)])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", choices=["lesson", "processed"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="share of the training pairs in the timed epoch (default 1)")
    ap.add_argument("--variants", nargs="*", default=variant_names(kind="gru"))
    ap.add_argument("--data", default=str(ROOT / "data/processed"))
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    device = pick_device(args.device, "--device")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() \
        or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {args.run}, fraction {args.fraction}")
    print("| variant | units | pairs timed | epochs | timed epoch | scores per epoch "
          "| train (whole run) | evaluate | total |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    grand = 0.0
    for variant in args.variants:
        pool = None
        if args.run == "processed":
            ready = prepare(params, variant, args.data)
            tcfg, train, valid, vocab_en, model, pool = (
                ready.train_cfg, ready.train, ready.valid, ready.vocab_en, ready.model,
                ready.pool)
        else:
            tcfg, train, valid, model = _lesson(params, variant)
        set_threads(variant_runtime(params, variant).threads)
        # the epoch's training alone; the scores train.keep reads after each epoch are timed
        # apart below (a greedy pass over the whole validation set)
        # the share of what a real epoch takes from the pool: train.pool, or the whole pool
        # where it holds fewer pairs
        per_epoch = min(tcfg.pool, len(pool)) if pool is not None else 0
        one = dataclasses.replace(tcfg, epochs=1, keep="last",
                                  pool=round(per_epoch * args.fraction))
        part = subset(train, args.fraction)
        pairs = len(part) * tcfg.question_repeats + one.pool
        with tempfile.TemporaryDirectory() as tmp:
            sync(device)
            t0 = time.perf_counter()
            fit(TrainingRun(model, part, subset(valid, args.fraction), one, device, pool=pool),
                Checkpointing(Path(tmp) / "ckpt.pt", "bench"))
            sync(device)
            epoch = time.perf_counter() - t0
        t0 = time.perf_counter()
        if tcfg.keep in ("val_bleu", "val_chrf"):
            _greedy(params, model, valid, device)
            sync(device)
        scores = time.perf_counter() - t0
        train_time = (epoch / args.fraction + scores) * tcfg.epochs
        t0 = time.perf_counter()
        if args.run == "processed":
            _evaluate(params, model, valid, vocab_en, device)
        else:
            validation_loss(model, valid, 125, device)
        sync(device)
        ev = time.perf_counter() - t0
        grand += train_time + ev
        print(f"| {variant} | {tcfg.units} | {pairs:,} | {tcfg.epochs} | {epoch:.1f} s | "
              f"{scores:.1f} s | {train_time / 60:.1f} min | {ev:.1f} s | "
              f"{(train_time + ev) / 60:.1f} min |",
              flush=True)
    print(f"| all | | | | | | | | **{grand / 60:.1f} min** |")


def _lesson(params: dict, variant: str) -> tuple[TrainConfig, Split, Split, torch.nn.Module]:
    """The variant's training config at the lesson's batch, the synthetic splits, the model."""
    mcfg, tcfg = variant_configs(params, variant)
    torch.manual_seed(tcfg.seed)
    model = build_model(mcfg, V_FR, V_EN, 300)
    return (dataclasses.replace(tcfg, batch_size=125), synthetic(TRAIN, 0), synthetic(VALID, 1),
            model)


def _greedy(params: dict, model: torch.nn.Module, valid: Split, device: torch.device) -> None:
    """The greedy pass over the validation set that the scores after each epoch make."""
    from pipeline.decoding.search import OutputLimit, translate_split

    ev: EvaluateParams = section(params, "evaluate", EvaluateParams)
    translate_split(model, valid, ev.batch_size, OutputLimit.of(ev), device, 1, 0.0)


def _evaluate(params: dict, model: torch.nn.Module, valid: Split, vocab_en: list[str],
              device: torch.device) -> None:
    """What evaluate@VARIANT computes (references: the ids, not the full token lists)."""
    from pipeline.data.vocab import ids_to_tokens
    from pipeline.decoding.search import OutputLimit, translate_split
    from pipeline.evaluation.metrics import bleu, lesson_val_loss

    ev: EvaluateParams = section(params, "evaluate", EvaluateParams)
    max_len = OutputLimit.of(ev)
    refs = [" ".join(ids_to_tokens(list(t), vocab_en)) for t in valid.tgt]
    for beam in (1, ev.beam_size):
        hyps = translate_split(model, valid, ev.batch_size, max_len, device, beam, ev.alpha)
        bleu([" ".join(ids_to_tokens(h, vocab_en)) for h in hyps], refs)
    lesson_val_loss(model, valid, ev.batch_size, device)
    validation_loss(model, valid, ev.batch_size, device)


if __name__ == "__main__":
    main()

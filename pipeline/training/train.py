"""The training loop: `fit` runs the epochs, each a pass of steps (`make_stepper`: eager, each
process's share under DistributedDataParallel, or replayed CUDA graphs), then validates, scores,
writes a checkpoint and keeps the epoch that train.keep picks.

A run is repeatable on the CPU: the batch order and the teacher-forcing draws of an epoch come
from generators seeded by (seed, epoch), and each checkpoint holds torch's RNG state, so a run
killed after epoch k and resumed ends with the same weights as a run never interrupted.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.data.batches import Batch, Split, epoch_pairs, max_lengths
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import LOWER_IS_BETTER, loss_sums
from pipeline.models.decoder import Model
from pipeline.params import RuntimeConfig, TrainConfig
from pipeline.runtime import set_tf32
from pipeline.training.averaging import keep_average, weights_of
from pipeline.training.checkpoints import restore_rng, rng_state, save_checkpoint
from pipeline.training.cuda_graphs import CapturedSteps, uses_graphs
from pipeline.training.distributed import ONE, World, all_sum, from_main, gather
from pipeline.training.optimizer import (
    make_optimizer,
    one_cycle_lr,
    pr_force,
    restore_optimizer,
    set_lr,
)
from pipeline.training.step import LossOf, batch_share, check_precision, train_step

READ_EVERY = 50  # training steps between reads of the running loss from the device


Step = Callable[[Batch, list[bool]], torch.Tensor]  # one training step: the batch's loss


@dataclass
class TrainingRun:
    """What one training run is: the model, its data, its training config and where and how
    it runs (the device, runtime section and processes)."""

    model: Model
    train: Split
    valid: Split
    cfg: TrainConfig
    device: torch.device
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    world: World = ONE
    pool: Split | None = None  # training-only pairs, cfg.pool of them added to each epoch
    # an epoch's pairs changed before it trains (cfg.name_swaps, cfg.sampling): (pairs, epoch)
    resample: Callable[[Split, int], Split] | None = None


@dataclass
class Checkpointing:
    """Where the run's checkpoint is written after every epoch, the fingerprint that tags it
    (a checkpoint of other params is never resumed), and the state to resume from."""

    path: Path
    fingerprint: str
    state: dict | None = None  # a loaded checkpoint (checkpoints.load_checkpoint)


def make_stepper(run: TrainingRun, opt: torch.optim.Optimizer
                 ) -> tuple[Step, CapturedSteps | None]:
    """How one step runs here: replayed CUDA graphs (one CUDA process), the eager step (the
    CPU, or graphs off), or each process's share of the batch under DistributedDataParallel.
    Also returns the captured steps, for their statistics."""
    model, cfg, device, world, runtime = run.model, run.cfg, run.device, run.world, run.runtime
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        loss_of = DistributedDataParallel(
            LossOf(model), device_ids=[device.index] if device.type == "cuda" else None)

        def shared(batch: Batch, force: list[bool]) -> torch.Tensor:
            part, per = batch_share(batch, cfg, world)
            return train_step(model, part.to(device), opt, cfg, device, force, loss_of, per)
    captured = uses_graphs(model, cfg, device, runtime.cuda_graphs) and world.size == 1
    if device.type == "cuda" and runtime.cuda_graphs and not captured and world.main:
        print("train: CUDA graphs off: " + (
            "training under DistributedDataParallel runs eagerly" if world.size > 1 else
            "train.pad_in_loss or model.mask_padding false would count the bucket padding; "
            "training eagerly"))
    if captured:
        steps = CapturedSteps(model, opt, cfg, device, bucket=runtime.bucket,
                              max_lengths=max_lengths(run.train, run.pool))
        return steps, steps
    if world.size > 1:
        return shared, None
    return lambda batch, force: train_step(model, batch.to(device), opt, cfg, device, force), None


def fit(run: TrainingRun, checkpoint: Checkpointing,
        score: Callable[[Model], dict[str, float]] | None = None,
        log: Callable[[dict], None] | None = None, pause_after: int | None = None) -> dict:
    """Train for cfg.epochs, from the checkpoint's state when it has one, and leave the model
    with the weights of the epoch that cfg.keep picks.

    After every epoch the validation loss is computed, `score(model)` adds its scores
    (val_bleu, val_chrf) to the epoch's history, `log(values)` is called and the checkpoint
    is written (holding the best weights so far too). With cfg.patience, training stops once
    cfg.keep has not improved for that many epochs. `pause_after` ends this call after that
    many epochs, as a kill would: a later call resumes from the checkpoint. With several
    processes (run.world) only the first writes, logs, shows progress and scores. Returns
    train.json's record (finish, below).
    """
    model, train, cfg, device, world = run.model, run.train, run.cfg, run.device, run.world
    check_precision(model, cfg, device)
    if cfg.keep in ("val_bleu", "val_chrf") and score is None:
        raise PipelineError(f"train.keep: {cfg.keep} needs the validation scores, and this "
                            "run computes none (keep val_loss or last)")
    model.to(device)
    if device.type == "cuda":
        set_tf32(run.runtime.tf32)
    opt = make_optimizer(model, cfg, device)
    if world.rank > 0:  # dropout masks of its own; rank 0 draws what one process would
        torch.manual_seed(cfg.seed * 1_000_003 + world.rank)
    start, history, seconds, best, recent = resume(run, opt, checkpoint)
    step, steps = make_stepper(run, opt)
    for epoch in range(start, cfg.epochs):
        if stops_early(history, cfg):  # also when resuming a run that had decided to stop
            break
        t0 = time.perf_counter()
        pairs = epoch_pairs(train, run.pool, cfg.question_repeats, cfg.pool, epoch)
        if run.resample is not None:
            pairs = run.resample(pairs, epoch)
        shown = train_epoch(model, pairs, opt, step, cfg, epoch, world)
        val = val_loss_of(run)
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": shown, "val_loss": val,
                        "pr_force": pr_force(epoch, cfg), "lr": float(opt.param_groups[0]["lr"])})
        if score is not None:  # timed apart: it is the cost of keeping the best epoch
            t0 = time.perf_counter()
            scores = from_main(score(model) if world.main else None, world)
            history[-1].update(scores, score_seconds=round(time.perf_counter() - t0, 2))
        if cfg.keep != "last" and kept_epoch(history, cfg.keep) == epoch + 1:
            best = weights_of(model)
        if cfg.average > 1:  # the last epochs' weights, for their average
            recent = [*recent, weights_of(model)][-cfg.average:]
        rngs = gather(rng_state(device), world)  # every process's, for an exact resume
        if world.main:
            end_of_epoch(history, cfg, seconds, log)
            save_checkpoint(checkpoint.path, {
                "fingerprint": checkpoint.fingerprint, "epoch": epoch + 1,
                "model": model.state_dict(), "optimizer": opt.state_dict(), **rngs[0],
                **({"rank_rng": rngs} if world.size > 1 else {}),
                "history": history, "seconds": seconds,
                **({"best": best} if best is not None else {}),
                **({"recent": recent} if recent else {}),
            })
        if pause_after is not None and epoch + 1 - start >= pause_after:
            break
    out = finish(model, history, seconds, best, cfg, world, steps, score is not None)
    if len(recent) > 1:  # checkpoint averaging (train.average), kept if better
        out["average"] = average_recent(run, recent, history[out["best_epoch"] - 1], score)
    return out


def resume(run: TrainingRun, opt: torch.optim.Optimizer, checkpoint: Checkpointing
           ) -> tuple[int, list[dict], float, dict | None, list[dict]]:
    """The model, optimizer and generators as the checkpoint left them, and where the run
    stands: the epochs done, their history, seconds, the best weights and the last epochs'
    weights (train.average); a fresh start without a checkpoint."""
    state = checkpoint.state
    if state is None:
        return 0, [], 0.0, None, []
    run.model.load_state_dict(state["model"])
    restore_optimizer(opt, state["optimizer"])
    restore_rng(state, run.world, run.device)
    if run.world.main:
        print(f"train: resuming after epoch {state['epoch']} from {checkpoint.path}")
    return (state["epoch"], state["history"], state["seconds"], state.get("best"),
            state.get("recent", []))


def average_recent(run: TrainingRun, recent: list[dict], kept: dict,
                   score: Callable[[Model], dict[str, float]] | None) -> dict:
    """pipeline/training/averaging.py's keep_average, validating as an epoch is."""
    def validate() -> dict[str, float]:
        values = {"val_loss": val_loss_of(run)}
        if score is not None:
            values.update(from_main(score(run.model) if run.world.main else None, run.world))
        return values
    return keep_average(run.model, recent, kept, run.cfg.keep, validate, run.world.main)


def val_loss_of(run: TrainingRun) -> float:
    """The teacher-forced validation loss, each process's share of the batches added up."""
    sums = loss_sums(run.model, run.valid, run.cfg.batch_size, run.device, run.cfg.precision,
                     run.world.rank, run.world.size)
    if run.world.size > 1:  # each process summed its share of the batches
        sums = all_sum(sums, run.world)
    return (sums[0] / sums[1]).item()


def train_epoch(model: Model, train: Split, opt: torch.optim.Optimizer, step: Step,
                cfg: TrainConfig, epoch: int, world: World) -> float:
    """One epoch of steps over the seeded sortish order, the one-cycle lr and the seeded
    forcing draws; returns the running loss. It is read back from the device only every
    READ_EVERY steps (the progress bar, the check that it is finite), so that the GPU never
    waits for the host."""
    model.train()
    batches = math.ceil(len(train) / cfg.batch_size)
    rng = np.random.default_rng([cfg.seed, epoch])
    coin = random.Random(cfg.seed * 1_000_003 + epoch)
    pr = pr_force(epoch, cfg)
    running, it, shown = None, epoch * batches, float("nan")
    bar = tqdm(train.sortish(cfg.batch_size, rng), total=batches, mininterval=1.0,
               desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if world.main else True,
               leave=False)
    for i, batch in enumerate(bar):
        set_lr(opt, one_cycle_lr(it, cfg.epochs * batches, cfg.lr, cfg.clr_div, cfg.clr_pct))
        loss = step(batch, [coin.random() < pr for _ in range(batch.tgt.size(1))])
        # a new tensor each time: a captured step's loss is overwritten by the next replay
        running = (loss.float().clone() if running is None
                   else 0.98 * running + 0.02 * loss.float())
        it += 1
        if (i + 1) % READ_EVERY == 0 or i + 1 == batches:
            # several processes: each one's loss is its share times N, so the mean of
            # their sum over N is the global batch's loss
            shown = all_sum(running.clone(), world).item() / world.size
            if not math.isfinite(shown):
                raise PipelineError(f"train: loss became {shown} at epoch {epoch + 1}; "
                                    "lower train.lr or set train.clip")
            bar.set_postfix(loss=f"{shown:.3f}")
    bar.close()
    return shown


def end_of_epoch(history: list[dict], cfg: TrainConfig, seconds: float,
                 log: Callable[[dict], None] | None) -> None:
    """The epoch's line, and its values to `log` (the first process only)."""
    last = history[-1]
    scored = "".join(f" {k} {last[k]:.2f}" for k in ("val_bleu", "val_chrf") if k in last)
    print(f"epoch {last['epoch']}/{cfg.epochs}: train_loss {last['train_loss']:.4f} val_loss "
          f"{last['val_loss']:.4f}{scored} ({seconds:.0f}s)", flush=True)
    if log is not None:
        log(last)


def finish(model: Model, history: list[dict], seconds: float, best: dict | None,
           cfg: TrainConfig, world: World, steps: CapturedSteps | None, scored: bool) -> dict:
    """The kept epoch's weights back in the model, and what train.json records."""
    kept = kept_epoch(history, cfg.keep)
    early = stops_early(history, cfg) and len(history) < cfg.epochs
    if early and world.main:
        print(f"train: stopped after epoch {len(history)}: {cfg.keep} has not improved for "
              f"{cfg.patience} epochs", flush=True)
    if best is not None and kept != len(history):
        model.load_state_dict(best)
        if world.main:
            print(f"train: keeping epoch {kept} (best {cfg.keep}), not {len(history)}",
                  flush=True)
    out = {"history": history, "seconds": seconds, "epochs": len(history),
           "keep": cfg.keep, "best_epoch": kept, "stopped_epoch": len(history),
           "stopped_early": early}
    if scored:
        out["score_seconds"] = round(sum(h.get("score_seconds", 0) for h in history), 2)
    if world.size > 1:
        out["processes"] = world.size
    if steps is not None:
        out["cuda_graphs"] = steps.stats()
        print(f"train: CUDA graphs: {out['cuda_graphs']}", flush=True)
    return out



def kept_epoch(history: list[dict], keep: str) -> int:
    """The epoch (1-based) that train.keep picks from the history: the best by that metric,
    the earliest of equals, or the last."""
    if keep == "last":
        return history[-1]["epoch"]
    sign = -1 if keep in LOWER_IS_BETTER else 1
    return max(history, key=lambda h: (sign * h[keep], -h["epoch"]))["epoch"]


def stops_early(history: list[dict], cfg: TrainConfig) -> bool:
    """Whether cfg.patience epochs have passed since the best one (never with patience 0)."""
    if cfg.patience == 0 or cfg.keep == "last" or not history:
        return False
    return history[-1]["epoch"] - kept_epoch(history, cfg.keep) >= cfg.patience

"""Training: Adam, the lesson's one-cycle schedule, teacher forcing, checkpoints that resume.

A run is repeatable on the CPU: the batch order and the teacher-forcing draws of an epoch come
from generators seeded by (seed, epoch), and each checkpoint holds torch's RNG state, so a run
killed after epoch k and resumed ends with the same weights as a run never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.data.batches import Batch, Split, pinned, to_device
from pipeline.data.vocab import PAD
from pipeline.evaluation.metrics import loss_sums
from pipeline.files import PipelineError, atomic_path
from pipeline.models.decoder import Model
from pipeline.models.gru import Force
from pipeline.params import RuntimeConfig, TrainConfig
from pipeline.runtime import autocast, set_tf32, set_threads
from pipeline.training.distributed import ONE, World, all_sum, from_main, gather, share

READ_EVERY = 50  # training steps between reads of the running loss from the device


def one_cycle_lr(it: int, total: int, lr: float, div: float, pct: float) -> float:
    """The lesson's CircularLR (use_clr=(div, pct)): lr/div up to lr over the first 1/pct of
    the iterations, then linearly back down to lr/div."""
    cut = max(1, total // int(pct))
    frac = it / cut if it <= cut else 1 - (it - cut) / max(1, total - cut)
    return lr * (1 + frac * (div - 1)) / div


def pr_force(epoch: int, cfg: TrainConfig) -> float:
    """Probability of teacher forcing in `epoch` (0-based): start -> end over pr_force_epochs."""
    if not cfg.teacher_forcing:
        return 0.0
    frac = min(epoch, cfg.pr_force_epochs) / max(1, cfg.pr_force_epochs)
    return cfg.pr_force_start + (cfg.pr_force_end - cfg.pr_force_start) * frac


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                   capturable: bool | None = None) -> torch.optim.Adam:
    """Adam, fused: one kernel for all parameters, and on the CPU ATen's own vector code (the
    unfused Adam's sqrt goes to MKL's vector math, whose rounding differs between Intel and
    AMD CPUs even under the gate's instruction-set pin: benchmarks/isa_check.py). On CUDA also
    capturable, with the learning rate a device tensor, so that a captured step reads the
    schedule's current value instead of the one it was captured with. `capturable`
    overrides what the device decides (tests use it on the CPU)."""
    if capturable is None:
        capturable = device.type == "cuda"
    lr = torch.tensor(cfg.lr, device=device) if capturable else cfg.lr
    return torch.optim.Adam(model.parameters(), lr=lr, betas=cfg.betas,
                            weight_decay=cfg.weight_decay, fused=True, capturable=capturable)


OPTIMIZER_FLAGS = ("fused", "capturable", "foreach", "differentiable")


def restore_optimizer(opt: torch.optim.Optimizer, saved: dict) -> None:
    """Load a saved optimizer state into `opt`, keeping `opt`'s own way of running.

    Optimizer.load_state_dict takes the param groups from the file: a checkpoint written on
    the CPU brings capturable=False and fused=None, and a checkpoint mapped to the CPU brings
    its lr as a CPU tensor, which a fused CUDA step reads once, at capture (the schedule would
    freeze in every graph). So the flags and the lr's kind and device are `opt`'s; only the
    values (moments, step counts, the lr's value) come from the file.
    """
    groups = []
    for now, old in zip(opt.param_groups, saved["param_groups"], strict=True):
        lr = float(old["lr"])
        group = {**old, **{k: now[k] for k in OPTIMIZER_FLAGS if k in now}}
        group["lr"] = now["lr"].new_tensor(lr) if isinstance(now["lr"], torch.Tensor) else lr
        groups.append(group)
    opt.load_state_dict({**saved, "param_groups": groups})


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)  # in place: captured steps hold this tensor
        else:
            g["lr"] = lr


def loss_backward(model: Model, batch: Batch, cfg: TrainConfig, device: torch.device,
                  force: Force, cache: bool = True, one_call: bool | None = None,
                  loss_of: Callable[..., torch.Tensor] | None = None, per: float | None = None
                  ) -> torch.Tensor:
    """Forward, loss, backward and clipping of one step; the loss stays on the device.
    `one_call`: the loss as on CUDA (Seq2Seq.loss; default: as the device does). `loss_of`:
    what computes Seq2Seq.loss (DDP's wrapper of it), `per`: its denominator (Seq2Seq.loss)."""
    with autocast(device, cfg.precision, cache):
        loss = (loss_of or model.loss)(batch.src, batch.src_len, batch.tgt, force,
                                       cfg.pad_in_loss, cfg.label_smoothing, one_call, per)
    loss.backward()
    if cfg.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip, foreach=True)
    return loss.detach()


def train_step(model: Model, batch: Batch, opt: torch.optim.Optimizer, cfg: TrainConfig,
               device: torch.device, force: Force,
               loss_of: Callable[..., torch.Tensor] | None = None, per: float | None = None
               ) -> torch.Tensor:
    """One eager step; returns the loss as a device tensor (read it with .item())."""
    opt.zero_grad(set_to_none=True)
    loss = loss_backward(model, batch, cfg, device, force, loss_of=loss_of, per=per)
    opt.step()
    return loss


def bucket(n: int, size: int, cap: int | None = None) -> int:
    """n rounded up to a multiple of size, but not past `cap`: the lengths a captured step is
    made for. The cap is the longest length training has (its lengths are cut there), so the
    longest batches, which are common, are captured as they are, with no padding steps."""
    up = -(-n // size) * size
    return up if cap is None or n > cap else min(up, cap)


def pad_batch(batch: Batch, src_to: int, tgt_to: int) -> Batch:
    """The batch with more padding columns (masked and ignored: the loss does not change)."""
    src = F.pad(batch.src, (0, src_to - batch.src.size(1)), value=PAD)
    tgt = F.pad(batch.tgt, (0, tgt_to - batch.tgt.size(1)), value=PAD)
    return Batch(src, batch.src_len, tgt, batch.index)


def force_mode(force: list[bool]) -> str:
    """forced / free / mixed: the first two keep the eager path's shortcuts in a graph."""
    inputs = force[:-1]  # the last step's flag feeds no step
    return "forced" if all(inputs) else "free" if not any(inputs) else "mixed"


class CapturedSteps:
    """Training steps on CUDA, each a replay of a CUDA graph of the whole step (forward,
    loss, backward, clipping, fused Adam): one launch instead of hundreds, which is what
    this small model's step is made of on a GPU (BENCHMARKS.md has its speed-up on an H200).

    A graph holds fixed shapes and addresses, so batches are padded to lengths that are
    multiples of runtime.bucket (the padding is masked and ignored, the loss unchanged), and
    there is one graph per (batch size, source length, target length, forcing mode), at most
    `max_graphs` of them: shapes past that train eagerly. `max_lengths` (the training split's
    longest source and target) caps the rounding: the longest batches are not padded. The
    first `warmup` steps of each shape run eagerly on a side stream (real steps, as CUDA wants
    before a capture); the next is captured, then replayed. Teacher forcing that mixes forced
    and free steps goes in as a device tensor of flags. Dropout draws new masks on every
    replay (PyTorch advances a graph's RNG offset per replay). All graphs share one memory
    pool: they never run at once, so one pool holds the largest graph's activations instead
    of each graph its own.

    A capture that fails (cuDNN or the fused optimizer refusing, say) warns once, naming the
    shape and the error, and that shape trains eagerly from then on; `capturing` puts the
    stream and the allocator back as they were. `stats()` says how many graphs were captured,
    how many shapes fell back and what the graphs reserved.
    """

    def __init__(self, model: Model, opt: torch.optim.Optimizer, cfg: TrainConfig,
                 device: torch.device, warmup: int = 3, max_graphs: int = 32,
                 max_lengths: tuple[int, int] | None = None, bucket: int = 4) -> None:
        self.model, self.opt, self.cfg, self.device = model, opt, cfg, device
        self.bucket = bucket  # runtime.bucket
        self.warmup, self.max_graphs = warmup, max_graphs
        self.max_src, self.max_tgt = max_lengths or (None, None)
        self.seen: dict[tuple, int] = {}
        self.graphs: dict[tuple, tuple] = {}
        self.failed: dict[tuple, str] = {}  # shape -> why its capture failed
        self.over_limit: set[tuple] = set()
        self.reserved = 0  # bytes the captures added to what the caching allocator holds
        self.side = torch.cuda.Stream(device)
        self.pool = torch.cuda.graph_pool_handle()

    def stats(self) -> dict:
        return {"graphs": len(self.graphs), "failed_shapes": len(self.failed),
                "shapes_over_limit": len(self.over_limit),
                "graph_memory_mb": round(self.reserved / 2**20, 1)}

    def _eager(self, batch: Batch, arg: Force) -> torch.Tensor:
        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            loss = train_step(self.model, batch, self.opt, self.cfg, self.device, arg)
        torch.cuda.current_stream(self.device).wait_stream(self.side)
        return loss

    def __call__(self, batch: Batch, force: list[bool]) -> torch.Tensor:
        size = self.bucket
        batch = pad_batch(batch, bucket(batch.src.size(1), size, self.max_src),
                          bucket(batch.tgt.size(1), size, self.max_tgt))
        mode = force_mode(force)
        # the bucket's extra steps predict padding (ignored); forced ones keep the fast path
        flags = force + [mode == "forced"] * (batch.tgt.size(1) - len(force))
        key = (*batch.src.shape, batch.tgt.size(1), mode)
        if key in self.graphs:
            graph, static, flag_buf, loss = self.graphs[key]
            # from pinned memory, so that the copies do not wait for the GPU
            static.src.copy_(pinned(batch.src), non_blocking=True)
            static.src_len.copy_(pinned(batch.src_len), non_blocking=True)
            static.tgt.copy_(pinned(batch.tgt), non_blocking=True)
            if flag_buf is not None:
                flag_buf.copy_(pinned(torch.tensor(flags)), non_blocking=True)
            graph.replay()
            return loss
        batch = batch.to(self.device)
        arg = to_device(flags, self.device) if mode == "mixed" else flags
        self.seen[key] = self.seen.get(key, 0) + 1
        if key in self.failed or self.seen[key] <= self.warmup:
            return self._eager(batch, arg)
        if len(self.graphs) >= self.max_graphs:
            if not self.over_limit:
                print(f"train: {self.max_graphs} CUDA graphs captured; shapes beyond them "
                      "train eagerly (a larger runtime.bucket makes fewer shapes)", flush=True)
            self.over_limit.add(key)
            return self._eager(batch, arg)
        return self._capture(key, batch, arg, mode)

    def _capture(self, key: tuple, batch: Batch, arg: Force, mode: str) -> torch.Tensor:
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)  # grads are made inside the graph's memory
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # as torch.cuda.graph does, but before the measure, not in it
        before = torch.cuda.memory_reserved(self.device)
        try:
            with capturing(graph, self.pool, self.side, self.device):
                loss = loss_backward(self.model, batch, self.cfg, self.device, arg, cache=False)
                self.opt.step()
        except Exception as e:  # noqa: BLE001 - any capture failure: train this shape eagerly
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if not self.failed:
                print(f"train: warning: capturing the step for shape {key} failed ({why}); "
                      "that shape trains eagerly", flush=True)
            self.failed[key] = why
            torch.cuda.synchronize(self.device)
            return self._eager(batch, arg)  # the step the capture did not take
        self.reserved += torch.cuda.memory_reserved(self.device) - before
        self.graphs[key] = (graph, batch, arg if mode == "mixed" else None, loss)
        graph.replay()  # the capture only recorded: this is the step
        return loss


@contextmanager
def capturing(graph: torch.cuda.CUDAGraph, pool: tuple, stream: torch.cuda.Stream,
              device: torch.device) -> Iterator[None]:
    """Record into `graph` what runs on `stream`, its memory from `pool`: torch.cuda.graph's
    capture, with a way back. torch.cuda.graph restores the current stream only once
    capture_end has succeeded, so a failed capture would leave the side stream current for the
    rest of the run, and the caching allocator sending that stream's allocations to the
    graphs' pool (capture_end ends that only after the capture ended well)."""
    before = torch.cuda.current_stream(device)
    torch.cuda.set_stream(stream)
    ended = False
    try:
        graph.capture_begin(pool=pool)
        try:
            yield
        finally:
            graph.capture_end()  # raises where the capture failed
            ended = True
    finally:
        torch.cuda.set_stream(before)
        end_routing = getattr(torch._C, "_cuda_endAllocateToPool", None)  # private: may move
        if not ended and end_routing is not None:
            index = device.index if device.index is not None else torch.cuda.current_device()
            try:
                end_routing(index, pool)
            except RuntimeError:  # capture_begin failed before it began to allocate there
                pass


def uses_graphs(model: Model, cfg: TrainConfig, device: torch.device,
                cuda_graphs: bool = True) -> bool:
    """Graphs need padding that changes nothing: not with the lesson's padding in the loss, nor
    with an encoder that runs through the padding."""
    return (device.type == "cuda" and cuda_graphs and not cfg.pad_in_loss
            and model.masks_padding)


def fingerprint(*parts: object) -> str:
    """Identifies what a checkpoint was trained on: a resume must not mix runs."""
    text = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, fp: str) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint: say so, start over
        print(f"train: ignoring unreadable checkpoint {path} ({e})")
        return None
    if state.get("fingerprint") != fp:
        print(f"train: {path} is from other params or data; starting over")
        return None
    return state


class _LossOf(torch.nn.Module):
    """Seq2Seq.loss as a module's forward: DistributedDataParallel averages the gradients of
    what its forward computes."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: object) -> torch.Tensor:
        return self.model.loss(*args)


Step = Callable[[Batch, list[bool]], torch.Tensor]  # one training step: the batch's loss


def make_stepper(model: Model, opt: torch.optim.Optimizer, cfg: TrainConfig,
                 device: torch.device, train: Split, world: World, rt: RuntimeConfig
                 ) -> tuple[Step, CapturedSteps | None]:
    """How one step runs here: replayed CUDA graphs (one CUDA process), the eager step (the
    CPU, or graphs off), or each process's share of the batch under DistributedDataParallel.
    Also returns the captured steps, for their statistics."""
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        loss_of = DistributedDataParallel(
            _LossOf(model), device_ids=[device.index] if device.type == "cuda" else None)

        def shared(batch: Batch, force: list[bool]) -> torch.Tensor:
            part, per = batch_share(batch, cfg, world)
            return train_step(model, part.to(device), opt, cfg, device, force, loss_of, per)
    captured = uses_graphs(model, cfg, device, rt.cuda_graphs) and world.size == 1
    if device.type == "cuda" and rt.cuda_graphs and not captured and world.main:
        print("train: CUDA graphs off: " + (
            "training under DistributedDataParallel runs eagerly" if world.size > 1 else
            "train.pad_in_loss or model.mask_padding false would count the bucket padding; "
            "training eagerly"))
    if captured:
        steps = CapturedSteps(model, opt, cfg, device, max_lengths=train.max_lengths(),
                              bucket=rt.bucket)
        return steps, steps
    if world.size > 1:
        return shared, None
    return lambda batch, force: train_step(model, batch.to(device), opt, cfg, device, force), None


def fit(model: Model, train: Split, valid: Split, cfg: TrainConfig, device: torch.device,
        checkpoint: Path, fp: str, state: dict | None = None,
        log: Callable[[dict], None] | None = None, stop_after: int | None = None,
        world: World = ONE, score: Callable[[Model], dict[str, float]] | None = None,
        rt: RuntimeConfig | None = None) -> dict:
    """Train for cfg.epochs, starting from `state` (a loaded checkpoint) when given, and leave
    the model with the weights of the epoch that cfg.keep picks.

    After every epoch the validation loss is computed, `score(model)` adds its scores
    (val_bleu, val_chrf) to the epoch's history, a checkpoint tagged `fp` is written to
    `checkpoint` (holding the best weights so far too), and `log(values)` is called. With
    cfg.patience, training stops once cfg.keep has not improved for that many epochs.
    `stop_after` ends this call after that many epochs (tests of resuming use it). With
    several processes (`world`) only the first writes, logs, shows progress and scores. `rt`
    gives runtime.cuda_graphs, bucket and tf32. Returns train.json's record (finish, below).
    """
    check_precision(model, cfg, device)
    if cfg.keep in ("val_bleu", "val_chrf") and score is None:
        raise PipelineError(f"train.keep: {cfg.keep} needs the validation scores, and this "
                            "run computes none (keep val_loss or last)")
    model.to(device)
    rt = rt or RuntimeConfig()
    if device.type == "cuda":
        set_tf32(rt.tf32)
    opt = make_optimizer(model, cfg, device)
    start, history, seconds, best = 0, [], 0.0, None
    if world.rank > 0:  # dropout masks of its own; rank 0 draws what one process would
        torch.manual_seed(cfg.seed * 1_000_003 + world.rank)
    if state is not None:
        model.load_state_dict(state["model"])
        restore_optimizer(opt, state["optimizer"])
        restore_rng(state, world, device)
        start, history, seconds = state["epoch"], state["history"], state["seconds"]
        best = state.get("best")
        if world.main:
            print(f"train: resuming after epoch {start} from {checkpoint}")
    step, steps = make_stepper(model, opt, cfg, device, train, world, rt)
    for epoch in range(start, cfg.epochs):
        if stops_early(history, cfg):  # also when resuming a run that had decided to stop
            break
        t0 = time.perf_counter()
        shown = train_epoch(model, train, opt, step, cfg, epoch, world)
        sums = loss_sums(model, valid, cfg.batch_size, device, cfg.precision, world.rank,
                         world.size)
        if world.size > 1:  # each process summed its share of the batches
            sums = all_sum(sums, world)
        val = (sums[0] / sums[1]).item()
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": shown, "val_loss": val,
                        "pr_force": pr_force(epoch, cfg), "lr": float(opt.param_groups[0]["lr"])})
        if score is not None:  # timed apart: it is the cost of keeping the best epoch
            t0 = time.perf_counter()
            scores = from_main(score(model) if world.main else None, world)
            history[-1].update(scores, score_seconds=round(time.perf_counter() - t0, 2))
        if cfg.keep != "last" and kept_epoch(history, cfg.keep) == epoch + 1:
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        rngs = gather(rng_state(device), world)  # every process's, for an exact resume
        if world.main:
            end_of_epoch(history, cfg, seconds, log)
            save_checkpoint(checkpoint, {
                "fingerprint": fp, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": opt.state_dict(), **rngs[0],
                **({"rank_rng": rngs} if world.size > 1 else {}),
                "history": history, "seconds": seconds,
                **({"best": best} if best is not None else {}),
            })
        if stop_after is not None and epoch + 1 - start >= stop_after:
            break
    return finish(model, history, seconds, best, cfg, world, steps, score is not None)


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


LOWER_IS_BETTER = {"val_loss"}


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


def batch_share(batch: Batch, cfg: TrainConfig, world: World) -> tuple[Batch, float]:
    """This process's rows of a global batch, padded to its lengths, and the denominator that
    makes the processes' averaged gradient the global batch's: the global count of target
    tokens (counted on the host) over the number of processes. An empty share runs the first
    row with weight zero, so that the process still joins the gradients' all-reduce."""
    tokens = batch.tgt.numel() if cfg.pad_in_loss else int((batch.tgt != PAD).sum())
    lo, hi = share(batch.src.size(0), world)
    per = tokens / world.size
    if lo == hi:
        lo, hi, per = 0, 1, math.inf  # loss / inf = 0: zero gradients
    rows = slice(lo, hi)
    return Batch(batch.src[rows], batch.src_len[rows], batch.tgt[rows], batch.index[rows]), per


def check_precision(model: Model, cfg: TrainConfig, device: torch.device) -> None:
    """bf16 on CUDA only for a model without RNNs: PyTorch's autocast wrapper for cuDNN RNNs
    casts them to fp16, not bf16, and nothing scales the gradients (benchmarks/gpu_check.py
    prints the GRU's dtype). The transformer has none and trains in bf16."""
    if device.type == "cuda" and cfg.precision == "bf16" and any(
            isinstance(m, torch.nn.RNNBase) for m in model.modules()):
        raise PipelineError("train.precision: bf16 is refused on CUDA for a GRU model: cuDNN's "
                            "RNNs autocast to fp16, not bf16, and nothing scales the gradients; "
                            "use fp32, whose matmuls run in TF32 (runtime.tf32), or bf16 with "
                            "the transformer")


def rng_state(device: torch.device) -> dict:
    """This process's random generators (dropout), as a checkpoint holds them: the CPU's, and
    its own GPU's when it trains on one (a CPU run touches no GPU, whatever the machine has)."""
    return {"torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}


def restore_rng(state: dict, world: World, device: torch.device) -> None:
    """Each process's generators from the checkpoint; with a different number of processes,
    rank 0 takes the first one's and the others keep their fresh seeds. The GPU's state goes to
    this process's GPU, whatever number of GPUs the saving machine had (an older checkpoint
    holds a list of all of them: this GPU's entry is taken when there is one)."""
    saved = state.get("rank_rng")
    mine = saved[world.rank] if saved and len(saved) == world.size else (
        state if world.rank == 0 else None)
    if mine is None:
        return
    torch.set_rng_state(mine["torch_rng"])
    cuda = mine.get("cuda_rng")
    if device.type != "cuda" or cuda is None:
        return
    if isinstance(cuda, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        cuda = cuda[index] if index < len(cuda) else None
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def file_digest(*paths: str | Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def prepare(params: dict, variant: str, processed: str | Path):
    """Configs, data splits, vocabularies and a freshly built model for `variant`.

    Returns (model_cfg, train_cfg, train, valid, vocab_fr, vocab_en, model, data_digest).
    """
    from pipeline.data.batches import load_splits
    from pipeline.files import read_json
    from pipeline.models.gru import build_model
    from pipeline.params import variant_configs, variant_runtime

    processed = Path(processed)
    mcfg, tcfg = variant_configs(params, variant)
    set_threads(variant_runtime(params, variant).threads)
    torch.manual_seed(tcfg.seed)
    files = [processed / n for n in ("ids.parquet", "emb_fr.npy", "emb_en.npy")]
    for f in files:
        if not f.exists():
            raise PipelineError(f"{f}: missing; run `dvc repro embeddings` first")
    train, valid, _ = load_splits(str(files[0]))  # the test set is for evaluate alone
    vocab_fr = read_json(processed / "vocab_fr.json")
    vocab_en = read_json(processed / "vocab_en.json")
    emb_fr, emb_en = (torch.from_numpy(np.load(f)) for f in files[1:])
    model = build_model(mcfg, len(vocab_fr), len(vocab_en), emb_fr.shape[1], emb_fr, emb_en)
    return mcfg, tcfg, train, valid, vocab_fr, vocab_en, model, file_digest(*files)

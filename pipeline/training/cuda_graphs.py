"""Training steps on CUDA replayed as CUDA graphs: batches padded to bucketed lengths, one graph
per shape, and a failed capture that falls back to the eager step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from pipeline.data.batches import Batch, pinned, to_device
from pipeline.data.vocab import PAD
from pipeline.models.decoder import Force, Model
from pipeline.params import TrainConfig
from pipeline.training.step import loss_backward, train_step


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

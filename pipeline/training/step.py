"""One eager training step (forward, loss, backward, clipping, Adam), and what a process of a
multi-process run takes of a global batch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pipeline.data.batches import Batch
from pipeline.data.vocab import PAD
from pipeline.errors import PipelineError
from pipeline.models.decoder import Force, Model
from pipeline.params import TrainConfig
from pipeline.runtime import autocast
from pipeline.training.distributed import World, share


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


class LossOf(torch.nn.Module):
    """Seq2Seq.loss as a module's forward: DistributedDataParallel averages the gradients of
    what its forward computes."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: object) -> torch.Tensor:
        return self.model.loss(*args)


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

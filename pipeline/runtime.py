"""Where and how a model runs: the device, the CPU threads, bf16 autocast and TF32. What
training, evaluation and translation share, kept out of the models and out of training."""

from __future__ import annotations

import torch

from pipeline.errors import PipelineError


def pick_device(name: str, where: str = "runtime.device") -> torch.device:
    """cpu, cuda or auto (CUDA when present); cuda without a CUDA device is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise PipelineError(f"{where}: {name!r} is not auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"{where}: cuda was asked for but no CUDA device is available "
                            "(use cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def set_threads(n: int) -> None:
    """torch's CPU threads; 0 leaves torch's own choice (one per core)."""
    if n > 0:
        torch.set_num_threads(n)


def autocast(device: torch.device, precision: str, cache: bool = True):  # noqa: ANN201
    """bf16 autocast when asked for. A CUDA graph capture needs cache=False: a cached cast
    would be made once, at capture, and replayed as a stale copy."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16",
                          cache_enabled=cache)


def set_tf32(on: bool) -> None:
    """fp32 matmuls and convolutions in TensorFloat-32 on CUDA (runtime.tf32)."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on

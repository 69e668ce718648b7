"""Adam, and the lesson's two schedules: the one-cycle learning rate and the probability of
teacher forcing."""

from __future__ import annotations

import torch

from pipeline.params import TrainConfig


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

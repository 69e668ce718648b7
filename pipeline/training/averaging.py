"""Checkpoint averaging (train.average): the mean of the last epochs' weights, as Vaswani et
al. (2017) averaged their last checkpoints and JoeyNMT's and fairseq's average_checkpoints do,
validated like an epoch and kept only where train.keep rates it above the kept epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.evaluation.metrics import LOWER_IS_BETTER
from pipeline.models.decoder import Model


def weights_of(model: Model) -> dict[str, torch.Tensor]:
    """A copy of the model's weights on the CPU (the kept epoch's, or one to average)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def mean_weights(recent: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several copies of the weights (integer buffers: the last's)."""
    return {k: torch.stack([w[k].float() for w in recent]).mean(0).to(v.dtype)
            if v.is_floating_point() else v for k, v in recent[-1].items()}


def keep_average(model: Model, recent: list[dict], kept: dict, keep: str,
                 validate: Callable[[], dict[str, float]], main: bool = True) -> dict:
    """Load the mean of `recent`, validate it (`validate`: val_loss, and the scores where the
    run has them) and keep it if `keep` (train.keep) rates it above the kept epoch (`kept`,
    its history entry); else go back to that epoch's weights. Returns what train.json records
    of it. `main`: the process that prints."""
    mine = weights_of(model)
    model.load_state_dict(mean_weights(recent))
    values = validate()
    sign = -1 if keep in LOWER_IS_BETTER else 1
    better = sign * values[keep] > sign * kept[keep]
    if not better:
        model.load_state_dict(mine)
    if main:
        print(f"train: the average of the last {len(recent)} epochs: {keep} {values[keep]:.4f} "
              f"against epoch {kept['epoch']}'s {kept[keep]:.4f}: "
              + ("keeping the average" if better else "keeping the epoch"), flush=True)
    return {"epochs": len(recent), **values, "kept": better}

"""The lesson's learning-rate finder (`fren-nmt lr-find`): a short run whose learning rate
grows batch by batch, to read off where the loss stops falling."""

from __future__ import annotations

import math
import random

import numpy as np

from pipeline.params import variant_runtime
from pipeline.runtime import pick_device
from pipeline.training.optimizer import make_optimizer, pr_force
from pipeline.training.prepare import prepare
from pipeline.training.step import train_step


def lr_find(params: dict, variant: str, processed: str, batches: int, start: float, end: float
            ) -> tuple[list[float], list[float]]:
    """The lesson's learning-rate finder: lr grows exponentially batch by batch from `start`
    to `end`; stops early once the smoothed loss is 4x its best."""
    ready = prepare(params, variant, processed)
    cfg, train, model = ready.train_cfg, ready.train, ready.model
    device = pick_device(variant_runtime(params, variant).device)
    model.to(device).train()
    opt = make_optimizer(model, cfg, device)
    rng, coin = np.random.default_rng(cfg.seed), random.Random(cfg.seed)
    lrs, losses, smooth, best = [], [], 0.0, math.inf
    step = 0
    while step < batches:
        for batch in train.sortish(cfg.batch_size, rng):
            lr = start * (end / start) ** (step / max(1, batches - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            force = [coin.random() < pr_force(0, cfg) for _ in range(batch.tgt.size(1))]
            loss = train_step(model, batch.to(device), opt, cfg, device, force).item()
            smooth = 0.98 * smooth + 0.02 * loss
            value = smooth / (1 - 0.98 ** (step + 1))  # bias-corrected running mean
            lrs.append(lr)
            losses.append(value)
            best = min(best, value)
            step += 1
            if step >= batches or not math.isfinite(value) or value > 4 * best:
                return lrs, losses
    return lrs, losses

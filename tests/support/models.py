"""Small models and batches the unit tests share: the variants' configs shrunk, random
batches with padding, the forcing patterns, and a gradient comparison."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.data.batches import Batch
from pipeline.data.vocab import PAD
from pipeline.params import ModelConfig, load_params, variant_configs
from pipeline.training.cuda_graphs import force_mode

ROOT = Path(__file__).resolve().parents[2]
SRC_V, TGT_V, EMB = 37, 29, 12
T = 6  # target steps of the batches below
FORCES = {"free": [False] * T, "forced": [True] * T, "mixed": [True, False, False, True, True,
                                                                False]}


def small_cfg(variant: str, **over) -> ModelConfig:
    cfg, _ = variant_configs(load_params(ROOT / "params.yaml"), variant)
    return ModelConfig(**{**cfg.__dict__, "enc_hidden": 10, "att_hidden": 9, **over})


def batch(b: int, s: int, t: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, s + 1, (b,), generator=g)
    lens[0] = s
    src = torch.randint(4, SRC_V, (b, s), generator=g)
    src[torch.arange(s)[None, :] >= lens[:, None]] = PAD
    tgt = torch.randint(4, TGT_V, (b, t), generator=g)
    return src, lens, tgt


def padded_batch(seed: int) -> Batch:
    src, lens, tgt = batch(5, 7, T, seed=seed)
    tgt[1:3, 4:] = PAD
    return Batch(src, lens, tgt, None)


def static_force(force: list[bool], steps: int) -> list[bool] | torch.Tensor:
    """What CapturedSteps passes for these flags, padded to `steps`."""
    mode = force_mode(force)
    flags = force + [mode == "forced"] * (steps - len(force))
    return torch.tensor(flags) if mode == "mixed" else flags


def assert_same_gradients(params: list, g_ours: tuple, g_ref: tuple) -> None:
    for p, a, b in zip(params, g_ours, g_ref):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), p.shape

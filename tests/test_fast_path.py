"""The project's decoder computes what the lesson's step-by-step loop computes (fp32)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from test_model import EMB, SRC_V, TGT_V, batch, small_cfg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference import reference_forward  # noqa: E402

from pipeline.model import build_model  # noqa: E402

T = 6
FORCES = {"free": [False] * T, "forced": [True] * T, "mixed": [True, False, False, True, True,
                                                                False]}


@pytest.mark.parametrize("variant", ["basic", "bidir", "teacher_forcing", "attention", "all"])
@pytest.mark.parametrize("force", list(FORCES))
def test_outputs_and_gradients_match_the_reference(variant: str, force: str) -> None:
    torch.manual_seed(0)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()  # no dropout draws
    src, lens, tgt = batch(5, 7, T, seed=3)
    params = [p for p in model.parameters() if p.requires_grad]

    ours = model(src, lens, tgt, force=FORCES[force])
    g_ours = torch.autograd.grad(torch.nn.functional.cross_entropy(
        ours.reshape(-1, TGT_V), tgt.reshape(-1)), params, allow_unused=True)
    ref = reference_forward(model, src, lens, tgt, FORCES[force])
    g_ref = torch.autograd.grad(torch.nn.functional.cross_entropy(
        ref.reshape(-1, TGT_V), tgt.reshape(-1)), params, allow_unused=True)

    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)
    for p, a, b in zip(params, g_ours, g_ref):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), p.shape

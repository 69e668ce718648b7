"""The project's decoder computes what the lesson's step-by-step loop computes (fp32)."""

from __future__ import annotations

import pytest
import torch
from support.models import EMB, FORCES, SRC_V, TGT_V, T, assert_same_gradients, batch, small_cfg
from support.reference import reference_forward

import pipeline.models.decoder
from pipeline.data.vocab import PAD
from pipeline.models.build import build_model


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
    assert_same_gradients(params, g_ours, g_ref)


@pytest.mark.parametrize("variant", ["basic", "bidir", "teacher_forcing", "attention", "all"])
@pytest.mark.parametrize("force", list(FORCES))
@pytest.mark.parametrize("pad_in_loss,smoothing", [(False, 0.0), (True, 0.0), (False, 0.1)])
def test_training_loss_and_gradients_match_the_reference(
        variant: str, force: str, pad_in_loss: bool, smoothing: float,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 10 rows = 2 steps of 5 per projection: slices end at free steps and at the last step
    monkeypatch.setattr(pipeline.models.decoder, "LOSS_ROWS", 10)
    torch.manual_seed(0)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()
    src, lens, tgt = batch(5, 7, T, seed=4)
    tgt[1:3, 4:] = PAD  # padded targets: counted only with pad_in_loss
    params = [p for p in model.parameters() if p.requires_grad]

    ours = model.loss(src, lens, tgt, FORCES[force], pad_in_loss, smoothing)
    g_ours = torch.autograd.grad(ours, params, allow_unused=True)
    logits = reference_forward(model, src, lens, tgt, FORCES[force])
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, TGT_V), tgt.reshape(-1),
                                            ignore_index=-100 if pad_in_loss else PAD,
                                            label_smoothing=smoothing)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)

    assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-5)
    assert_same_gradients(params, g_ours, g_ref)

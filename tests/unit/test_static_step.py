"""The training step a CUDA graph captures: padded to length buckets, teacher forcing as a
device tensor, no host reads. It must compute what the eager step computes."""

from __future__ import annotations

import pytest
import torch
from support.models import (
    EMB,
    FORCES,
    SRC_V,
    TGT_V,
    T,
    assert_same_gradients,
    padded_batch,
    small_cfg,
    static_force,
)

from pipeline.models.build import build_model
from pipeline.params import TrainConfig, variant_names
from pipeline.training.cuda_graphs import CapturedSteps, bucket, force_mode, pad_batch
from pipeline.training.step import loss_backward

CPU = torch.device("cpu")


def grads(model: torch.nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("variant", variant_names())
@pytest.mark.parametrize("force", list(FORCES))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bucketed_static_step_equals_the_eager_step(variant: str, force: str,
                                                    smoothing: float) -> None:
    torch.manual_seed(0)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()  # no dropout draws
    cfg = TrainConfig(label_smoothing=smoothing)
    b = padded_batch(4)
    loss = loss_backward(model, b, cfg, CPU, FORCES[force])
    g_eager = grads(model)
    model.zero_grad(set_to_none=True)
    big = pad_batch(b, bucket(7, 8), bucket(T, 8))
    assert big.src.shape == (5, 8) and big.tgt.shape == (5, 8)
    static = loss_backward(model, big, cfg, CPU, static_force(FORCES[force], 8))
    assert torch.allclose(static, loss, atol=1e-6, rtol=1e-5)
    assert_same_gradients(list(model.parameters()), grads(model), g_eager)


@pytest.mark.parametrize("variant", variant_names())
@torch._dynamo.config.patch(allow_rnn=True)  # else Dynamo refuses nn.GRU (PyTorch #167275)
def test_the_step_compiles_as_one_graph(variant: str) -> None:
    # fullgraph=True fails on any graph break, and a host read (.item(), bool(tensor), a
    # tensor's value deciding Python control flow, lengths moved to the CPU) is one.
    torch.manual_seed(0)
    # one layer a side and the target unpadded: tracing costs time per layer and per step,
    # and neither decides whether there is a graph break
    model = build_model(small_cfg(variant, enc_layers=1, dec_layers=1), SRC_V, TGT_V,
                        EMB).eval()
    b = pad_batch(padded_batch(5), 8, T)
    cases = {"mixed": static_force(FORCES["mixed"], T)}
    if variant == "all":
        cases["free"] = static_force(FORCES["free"], T)
        cases["forced"] = static_force(FORCES["forced"], T)
    for force in cases.values():
        def step(src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                 force: list[bool] | torch.Tensor = force) -> torch.Tensor:
            return model.loss(src, src_len, tgt, force, label_smoothing=0.1)

        torch._dynamo.reset()
        compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
        eager_loss = step(b.src, b.src_len, b.tgt)
        eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()),
                                          allow_unused=True)
        loss = compiled(b.src, b.src_len, b.tgt)
        g = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
        assert torch.allclose(loss, eager_loss, atol=1e-6)
        assert_same_gradients(list(model.parameters()), g, eager_grads)


def test_force_modes() -> None:
    assert force_mode([True, True, False]) == "forced"  # the last flag feeds no step
    assert force_mode([False, False, True]) == "free"
    assert force_mode([True, False, True]) == "mixed"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_steps_on_cuda_train_like_eager_steps_and_redraw_dropout() -> None:
    from pipeline.training.optimizer import make_optimizer, set_lr
    from pipeline.training.step import train_step

    dev = torch.device("cuda")
    cfg = TrainConfig(lr=1e-3)
    batches = [padded_batch(s) for s in range(6)]
    forces = [FORCES["mixed"]] * 3 + [FORCES["forced"]] * 3

    def train(captured: bool) -> tuple[list[float], torch.nn.Module]:
        torch.manual_seed(0)
        model = build_model(small_cfg("all", emb_dropout=0.0, enc_dropout=0.0, dec_dropout=0.0,
                                      out_dropout=0.0), SRC_V, TGT_V, EMB).to(dev).train()
        opt = make_optimizer(model, cfg, dev)
        steps = CapturedSteps(model, opt, cfg, dev, warmup=1, bucket=8)
        losses = []
        for _ in range(3):  # warm-up, capture, replay for every shape
            for b, f in zip(batches, forces):
                set_lr(opt, cfg.lr)
                loss = steps(b, f) if captured else train_step(
                    model, pad_batch(b, 8, 8).to(dev), opt, cfg, dev, static_force(f, 8))
                losses.append(loss.item())
        return losses, model

    eager, m1 = train(False)
    graphed, m2 = train(True)
    assert eager == pytest.approx(graphed, rel=1e-3, abs=1e-4)
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(a, b, atol=1e-4)

    # dropout inside a replayed graph draws new masks every time
    torch.manual_seed(0)
    model = build_model(small_cfg("all"), SRC_V, TGT_V, EMB).to(dev).train()
    opt = make_optimizer(model, cfg, dev)
    steps = CapturedSteps(model, opt, cfg, dev, warmup=1, bucket=8)
    seen = []
    for _ in range(5):
        set_lr(opt, 0.0)  # the weights stay: only the dropout masks can change the loss
        seen.append(steps(batches[0], FORCES["forced"]).item())
    assert len(steps.graphs) == 1 and len(set(seen[2:])) == 3


@pytest.mark.parametrize("variant", ["basic", "all"])
@torch._dynamo.config.patch(allow_rnn=True)
def test_the_train_mode_step_and_the_clipping_compile_as_one_graph_each(variant: str) -> None:
    """What a capture records in training: dropout on, the loss as CUDA computes it, then
    clipping. fullgraph=True fails on a host read in either part. (Dropout's draws differ
    between the two ways: no equality here.) Optimizer.step breaks Dynamo's graph on purpose
    (its grad-mode wrapper), so the capturable fused Adam is checked by the dispatch spy in
    tests/unit/test_cuda_path.py instead."""
    from pipeline.training.optimizer import make_optimizer

    torch.manual_seed(0)
    model = build_model(small_cfg(variant, enc_layers=1, dec_layers=1), SRC_V, TGT_V,
                        EMB).train()  # one layer a side, as above: tracing time
    opt = make_optimizer(model, TrainConfig(lr=1e-3), CPU, capturable=True)
    b = pad_batch(padded_batch(5), 8, T)
    force = static_force(FORCES["mixed"], T)

    def forward(src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return model.loss(src, src_len, tgt, force, label_smoothing=0.1, one_call=True)

    def clip() -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)

    torch._dynamo.reset()
    loss = torch.compile(forward, fullgraph=True, backend="aot_eager")(b.src, b.src_len, b.tgt)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters()
                                        if p.requires_grad)
    before = [p.grad.clone() for p in model.parameters()]
    norm = torch.compile(clip, fullgraph=True, backend="aot_eager")()
    scale = min(1.0, 1.0 / (float(norm) + 1e-6))
    for g, p in zip(before, model.parameters()):
        assert torch.allclose(p.grad, g * scale, rtol=1e-5, atol=1e-7)
    opt.step()  # the captured step's last part, eagerly

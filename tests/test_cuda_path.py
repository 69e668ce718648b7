"""The CUDA path's rules, checked on the CPU: a resumed optimizer keeps the device's way of
running, the GPU's one-call loss equals the CPU's slices, and the whole step (optimizer and
clipping included) reads nothing back to the host and runs the same ops for the same shape."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from test_fast_path import FORCES, assert_same_gradients
from test_model import EMB, SRC_V, TGT_V, small_cfg
from test_static_step import padded_batch, static_force

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gpu_check import OpCounter, count_ops  # noqa: E402  the dispatch spy, shared with the benchmark

from pipeline.data import Split
from pipeline.files import PipelineError
from pipeline.model import build_model
from pipeline.params import LESSON_VARIANTS, VARIANTS, TrainConfig, load_params
from pipeline.train import (
    fit,
    loss_backward,
    make_optimizer,
    pad_batch,
    restore_optimizer,
    set_lr,
    train_step,
)

CPU = torch.device("cpu")


def trained_optimizer(capturable: bool) -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    model = build_model(small_cfg("attention"), SRC_V, TGT_V, EMB).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3), CPU, capturable=capturable)
    for seed in range(2):
        train_step(model, padded_batch(seed), opt, TrainConfig(lr=1e-3), CPU, FORCES["mixed"])
    return model, opt


def test_a_resumed_optimizer_runs_the_way_this_device_wants() -> None:
    # a checkpoint written on the CPU (float lr, capturable=False, fused=None), resumed where
    # steps are captured: the lr must be a tensor on the parameters' device that set_lr moves
    _, cpu_opt = trained_optimizer(capturable=False)
    saved = cpu_opt.state_dict()
    model, _ = trained_optimizer(capturable=True)
    opt = make_optimizer(model, TrainConfig(lr=5.0), CPU, capturable=True)
    restore_optimizer(opt, saved)
    group = opt.param_groups[0]
    assert group["capturable"] is True and group["fused"] is True
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].device == CPU
    assert float(group["lr"]) == pytest.approx(float(saved["param_groups"][0]["lr"]))
    held = group["lr"]
    set_lr(opt, 0.25)
    assert opt.param_groups[0]["lr"] is held and float(held) == 0.25  # filled in place
    for state in opt.state.values():  # capturable Adam keeps its step count on the device
        assert state["step"].device == CPU and state["step"].dtype == torch.float32
        assert float(state["step"]) == 2

    # and the other way: a checkpoint of a captured run, resumed by an eager one
    _, graph_opt = trained_optimizer(capturable=True)
    model, _ = trained_optimizer(capturable=False)
    opt = make_optimizer(model, TrainConfig(lr=5.0), CPU)
    restore_optimizer(opt, graph_opt.state_dict())
    group = opt.param_groups[0]
    assert not group["capturable"] and group["fused"] and isinstance(group["lr"], float)
    train_step(model, padded_batch(3), opt, TrainConfig(lr=1e-3), CPU, FORCES["free"])


def test_a_restored_optimizer_continues_like_the_original() -> None:
    model, opt = trained_optimizer(capturable=False)
    saved = copy.deepcopy(opt.state_dict())  # as from a file: no tensors shared with `opt`
    twin = build_model(small_cfg("attention"), SRC_V, TGT_V, EMB).train()
    twin.load_state_dict(model.state_dict())
    opt2 = make_optimizer(twin, TrainConfig(lr=1e-3), CPU)
    restore_optimizer(opt2, saved)
    for m, o in ((model, opt), (twin, opt2)):
        torch.manual_seed(5)
        train_step(m, padded_batch(7), o, TrainConfig(lr=1e-3), CPU, FORCES["forced"])
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("force", list(FORCES))
def test_the_gpu_loss_in_one_call_equals_the_cpu_slices(variant: str, force: str) -> None:
    torch.manual_seed(0)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()
    b = padded_batch(2)
    params = list(model.parameters())
    out = {}
    for one_call in (False, True):
        loss = model.loss(b.src, b.src_len, b.tgt, FORCES[force], label_smoothing=0.1,
                          one_call=one_call)
        out[one_call] = (loss, torch.autograd.grad(loss, params, allow_unused=True))
    assert torch.allclose(out[True][0], out[False][0], atol=1e-6, rtol=1e-5)
    assert_same_gradients(params, out[True][1], out[False][1])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["mixed", "free", "forced"])
def test_the_whole_step_reads_nothing_back_and_repeats_its_ops(variant: str, mode: str) -> None:
    """The captured step's work (forward in train mode with dropout, loss, backward,
    clipping, capturable fused Adam with a tensor lr), as CapturedSteps records it."""
    torch.manual_seed(0)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).train()
    cfg = TrainConfig(lr=1e-3, clip=1.0, label_smoothing=0.1)
    opt = make_optimizer(model, cfg, CPU, capturable=True)
    train_step(model, pad_batch(padded_batch(0), 8, 8), opt, cfg, CPU,
               static_force(FORCES[mode], 8))  # Adam's state exists before the recording
    runs = []
    for seed in (1, 2):  # two batches of one shape key, different contents
        b = pad_batch(padded_batch(seed), 8, 8)
        force = static_force(FORCES[mode], 8)
        with OpCounter() as spy:
            opt.zero_grad(set_to_none=True)
            loss_backward(model, b, cfg, CPU, force, cache=False, one_call=True)  # as on CUDA
            opt.step()
        assert spy.bad == [], spy.bad[:5]
        runs.append(spy.ops)
    assert runs[0] == runs[1]
    assert any("bernoulli" in op or "native_dropout" in op for op in runs[0])  # train mode
    assert any("_fused_adam" in op for op in runs[0])


def test_counted_as_cuda_a_gru_call_and_a_dropout_are_one_op_each() -> None:
    """cuDNN runs a GRU call as one op forward and one backward whatever its layers; CUDA's
    dropout is one fused kernel. The CPU dispatches their insides one by one."""
    counts = {}
    for layers in (1, 3):
        gru = torch.nn.GRU(4, 4, layers, batch_first=True, dropout=0.5 if layers > 1 else 0.0)
        x, h0 = torch.randn(2, 5, 4, requires_grad=True), torch.zeros(layers, 2, 4)
        with OpCounter(as_cuda=True) as spy:
            out, _ = gru(x, h0)
            spy.mark()
            out.sum().backward()
        counts[layers] = (spy.marks[0], spy.count)
    assert counts[1] == counts[3]
    assert counts[1][0] == 1  # the GRU call
    # + sum, ones_like (backward's seed), the GRU's backward, the copy into x.grad
    assert counts[1][1] == 1 + 4
    with OpCounter(as_cuda=True) as spy:
        torch.nn.functional.dropout(torch.randn(8), 0.5, training=True)
        torch.nn.functional.dropout(torch.randn(8), 0.5, training=False)  # nothing to do
    with OpCounter() as plain:
        torch.nn.functional.dropout(torch.randn(8), 0.5, training=True)
    assert spy.count == 2 + 1  # two randn, one dropout
    assert plain.count > 2  # the CPU's way: draw, scale, multiply


@pytest.mark.parametrize("variant", LESSON_VARIANTS)  # the reference is the lesson's GRU loop
def test_the_captured_step_dispatches_no_more_ops_than_the_reference(variant: str) -> None:
    """The issue's measure of a step's kernels on a GPU (benchmarks/gpu_check.py prints the
    table): the project's step, as a graph captures it, against the lesson-style reference,
    at the lesson's lengths, with the variant's params."""
    c = count_ops(load_params(Path(__file__).resolve().parents[1] / "params.yaml"), variant)
    assert c["bad"] == []
    assert c["project"]["step"] <= c["reference"]["step"], c


def test_a_host_read_is_caught_by_the_spy() -> None:
    with OpCounter() as spy:
        x = torch.ones(3)
        bool(x.sum() > 0)
        torch.tensor([1.0, 2.0])
    assert len(spy.bad) == 2


def test_bf16_on_cuda_is_refused_with_one_line() -> None:
    import pandas as pd

    ids = pd.DataFrame({"fr_ids": [[5, 6, 3]], "en_ids": [[7, 3]], "line": [0]})
    model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
    with pytest.raises(PipelineError, match="train.precision: bf16 is refused on CUDA"):
        fit(model, Split(ids), Split(ids), TrainConfig(precision="bf16"), torch.device("cuda"),
            None, "fp")  # refused before anything touches the device

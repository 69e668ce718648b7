"""The CUDA path's rules, checked on the CPU: a resumed optimizer keeps the device's way of
running, the GPU's one-call loss equals the CPU's slices, and the whole step (optimizer and
clipping included) reads nothing back to the host and runs the same ops for the same shape."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from support.models import (
    EMB,
    FORCES,
    SRC_V,
    TGT_V,
    assert_same_gradients,
    padded_batch,
    small_cfg,
    static_force,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gpu_check import OpCounter, count_ops, forcing_modes  # noqa: E402  the spy, the benchmark's

import pipeline.training.cuda_graphs
from pipeline.data.batches import Split, to_device
from pipeline.decoding.search import beam_search, greedy
from pipeline.errors import PipelineError
from pipeline.models.build import build_model
from pipeline.params import TrainConfig, load_params, variant_configs, variant_names
from pipeline.training.checkpoints import restore_rng, rng_state
from pipeline.training.cuda_graphs import CapturedSteps, bucket, pad_batch
from pipeline.training.distributed import ONE
from pipeline.training.optimizer import make_optimizer, restore_optimizer, set_lr
from pipeline.training.step import check_precision, loss_backward, train_step
from pipeline.training.train import Checkpointing, TrainingRun, fit

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


@pytest.mark.parametrize("variant", variant_names())
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


@pytest.mark.parametrize("variant", variant_names())
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


PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")


# the reference is the lesson's GRU loop
@pytest.mark.parametrize("variant", variant_names(kind="gru"))
def test_the_captured_step_dispatches_no_more_ops_than_the_reference(variant: str) -> None:
    """A step's kernels on a GPU as benchmarks/gpu_check.py counts them (BENCHMARKS.md says
    how): the project's step as a graph captures the lesson's longest batch, in every forcing
    mode the variant trains in, against the lesson-style reference at the same lengths."""
    _, train_cfg = variant_configs(PARAMS, variant)
    for mode in forcing_modes(train_cfg.teacher_forcing):
        c = count_ops(PARAMS, variant, mode)
        assert c["lengths"] == (30, 25) and c["bad"] == []  # the cap: captured as it is
        assert c["project"]["step"] <= c["reference"]["step"], (mode, c)


def test_a_shorter_batch_is_captured_padded_and_counted_so() -> None:
    """29 x 21 is captured as 30 x 24 (bucket 4, not past the longest 30): the count is taken
    on the padded step, which does more than the same step unpadded."""
    padded = count_ops(PARAMS, "basic", "free", (29, 21))
    plain = count_ops(PARAMS, "basic", "free", (29, 21), captured=False)
    assert padded["lengths"] == (30, 24) and plain["lengths"] == (29, 21)
    assert padded["project"]["step"] > plain["project"]["step"]
    assert padded["reference"] == plain["reference"]  # the reference is never padded


def test_buckets_round_up_but_not_past_the_longest_length() -> None:
    assert [bucket(n, 4) for n in (1, 4, 5, 25, 30)] == [4, 4, 8, 28, 32]
    assert [bucket(n, 4, cap=25) for n in (1, 21, 22, 25)] == [4, 24, 24, 25]
    assert bucket(26, 4, cap=25) == 28  # longer than the cap (not training's data): as before


def test_fit_caps_the_buckets_at_the_training_split_s_longest_lengths() -> None:
    import pandas as pd

    ids = pd.DataFrame({"fr_ids": [[5] * 6, [6] * 3], "en_ids": [[7] * 2, [8] * 5],
                        "line": [0, 1]})
    assert Split(ids).max_lengths() == (6, 5)


def test_a_host_read_is_caught_by_the_spy() -> None:
    with OpCounter() as spy:
        x = torch.ones(3)
        bool(x.sum() > 0)
        torch.tensor([1.0, 2.0])
    assert len(spy.bad) == 2


def test_bf16_on_cuda_is_refused_for_the_gru_variants_with_the_reason() -> None:
    import pandas as pd

    ids = pd.DataFrame({"fr_ids": [[5, 6, 3]], "en_ids": [[7, 3]], "line": [0]})
    model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
    with pytest.raises(PipelineError, match="train.precision: bf16 is refused on CUDA for a "
                       "GRU model: cuDNN's RNNs autocast to fp16"):
        fit(TrainingRun(model, Split(ids), Split(ids), TrainConfig(precision="bf16"),
                        torch.device("cuda")), Checkpointing(None, "fp"))  # refused before
        # anything touches the device
    bf16 = TrainConfig(precision="bf16")
    for variant in variant_names(kind="gru"):
        with pytest.raises(PipelineError, match="bf16 is refused"):
            check_precision(build_model(small_cfg(variant), SRC_V, TGT_V, EMB), bf16,
                            torch.device("cuda"))
    transformer = build_model(small_cfg("transformer"), SRC_V, TGT_V, EMB)
    check_precision(transformer, bf16, torch.device("cuda"))  # no RNN: accepted
    check_precision(model, TrainConfig(precision="fp32"), torch.device("cuda"))
    check_precision(model, bf16, CPU)


# --- the CUDA path's host side, on the CPU ---------------------------------------------------
class FakeCuda:
    """What CapturedSteps asks of torch.cuda, on the CPU: streams are names, the allocator's
    routing of a stream's allocations to the graphs' pool is a flag, and a graph's capture can
    be made to fail at capture_begin (after the routing began, as CUDA's does when
    cudaStreamBeginCapture refuses) or in the step it records, with capture_end then failing
    without ending the routing, as an invalidated capture does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.current, self.routing, self.fail, self.capturing = "default", None, None, False
        fake = self

        class Stream:
            def __init__(self, name: str = "side") -> None:
                self.name = name

            def wait_stream(self, other: object) -> None:
                pass

            def __eq__(self, other: object) -> bool:
                return getattr(other, "name", None) == self.name

        class StreamContext:
            def __init__(self, stream: Stream) -> None:
                self.stream = stream

            def __enter__(self) -> None:
                self.before, fake.current = fake.current, self.stream.name

            def __exit__(self, *exc: object) -> None:
                fake.current = self.before

        class Graph:
            def capture_begin(self, pool: object = None) -> None:
                fake.routing = pool
                if fake.fail == "begin":
                    raise RuntimeError("CUDA error: operation not permitted (faked begin)")
                fake.capturing = True

            def capture_end(self) -> None:
                fake.capturing = False
                if fake.fail == "step":
                    raise RuntimeError("CUDA error: capture invalidated (faked end)")
                fake.routing = None

            def replay(self) -> None:
                raise AssertionError("no graph should be replayed in these tests")

        def end_allocate(index: int, pool: object) -> None:
            if fake.routing is None:
                raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
            fake.routing = None

        def set_stream(stream: Stream) -> None:
            fake.current = stream.name

        for name, value in {
                "Stream": lambda device=None: Stream(), "stream": StreamContext,
                "current_stream": lambda device=None: Stream(fake.current),
                "default_stream": lambda device=None: Stream("default"),
                "set_sync_debug_mode": lambda mode: None,
                "set_stream": set_stream, "CUDAGraph": Graph,
                "graph_pool_handle": lambda: (0, 7), "synchronize": lambda device=None: None,
                "empty_cache": lambda: None, "memory_reserved": lambda device=None: 0,
                "current_device": lambda: 0}.items():
            monkeypatch.setattr(torch.cuda, name, value)
        monkeypatch.setattr(torch._C, "_cuda_endAllocateToPool", end_allocate, raising=False)


def no_dropout_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(small_cfg("all", emb_dropout=0.0, enc_dropout=0.0, dec_dropout=0.0,
                                 out_dropout=0.0), SRC_V, TGT_V, EMB).train()


@pytest.mark.parametrize("where", ["begin", "step"])
def test_a_failed_capture_restores_the_stream_and_the_allocator_and_trains_eagerly(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, where: str) -> None:
    fake = FakeCuda(monkeypatch)
    fake.fail = where
    real_loss_backward = pipeline.training.cuda_graphs.loss_backward

    def refusing(*args: object, **kwargs: object) -> torch.Tensor:
        if fake.capturing:  # what cuDNN does when it meets a sync inside a capture
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        return real_loss_backward(*args, **kwargs)

    monkeypatch.setattr(pipeline.training.cuda_graphs, "loss_backward", refusing)
    cfg = TrainConfig(lr=1e-2, clip=1.0)
    batches = [padded_batch(seed) for seed in range(4)]
    force = FORCES["mixed"]

    model = no_dropout_model()
    opt = make_optimizer(model, cfg, CPU)
    steps = CapturedSteps(model, opt, cfg, CPU, warmup=1, bucket=8)
    for b in batches:  # warm-up, the capture that fails (then the step eagerly), eager, eager
        steps(b, force)
    assert fake.current == "default"  # the side stream is not left current
    assert fake.routing is None       # allocations no longer go to the graphs' pool
    assert steps.stats()["graphs"] == 0 and steps.stats()["failed_shapes"] == 1
    out = capsys.readouterr().out
    assert out.count("train: warning: capturing the step for shape") == 1
    assert "that shape trains eagerly" in out

    eager = no_dropout_model()
    eager_opt = make_optimizer(eager, cfg, CPU)
    for b in batches:
        train_step(eager, pad_batch(b, 8, 8), eager_opt, cfg, CPU, static_force(force, 8))
    for a, b in zip(model.parameters(), eager.parameters()):
        assert torch.equal(a, b)


def test_a_failing_gpu_check_section_is_reported_and_the_next_one_runs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import gpu_check

    monkeypatch.setattr(gpu_check, "failures", [])
    gpu_check.section("broken", lambda: 1 / 0)
    gpu_check.section("fine", lambda: print("fine ran"))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "" and out[1] == "## broken"
    assert out[2].startswith("-> broken: FAILED: broken: ZeroDivisionError: division by zero (")
    assert out[4:6] == ["## fine", "fine ran"] and out[6].startswith("-> fine: ok (")
    assert gpu_check.failures == ["broken: ZeroDivisionError: division by zero"]


def test_gpu_check_s_correctness_sections_run_against_a_fake_cuda(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first GPU session has minutes: its sections' code runs here first, on the CPU, with
    every capture refused (so nothing is half-run). The failed-capture section passes; the
    captured = eager section reports the captures that fell back instead of passing."""
    import gpu_check

    fake = FakeCuda(monkeypatch)
    fake.fail = "begin"
    monkeypatch.setattr(gpu_check, "failures", [])
    gpu_check.cuda_capture_failure(PARAMS, CPU)
    assert gpu_check.failures == []
    gpu_check.cuda_correctness(PARAMS, CPU)
    assert len(gpu_check.failures) == 1
    assert gpu_check.failures[0].startswith("captures failed and trained eagerly: ")


def test_graph_memory_is_measured_after_the_cache_is_emptied_not_across_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda.graph's enter empties the cache, so a reading taken before it under-reports
    (and can go negative). The capture now empties it first, then reads, then captures; nothing
    empties the cache between the two readings."""
    fake = FakeCuda(monkeypatch)
    calls, reserved = [], iter([100 * 2**20, 164 * 2**20])
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "memory_reserved",
                        lambda device=None: calls.append("reserved") or next(reserved))
    replays = []
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda self: replays.append(1))
    model = no_dropout_model()
    cfg = TrainConfig(lr=1e-3)
    steps = CapturedSteps(model, make_optimizer(model, cfg, CPU), cfg, CPU, warmup=1,
                          bucket=8)
    b = padded_batch(0)
    steps(b, FORCES["forced"])  # warm-up
    steps(b, FORCES["forced"])  # the capture
    assert calls == ["empty_cache", "reserved", "reserved"]
    assert steps.stats()["graphs"] == 1 and steps.stats()["graph_memory_mb"] == 64.0
    assert replays == [1] and fake.current == "default" and fake.routing is None


def test_host_to_gpu_copies_go_through_pinned_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """to_device pins, then copies asynchronously: a copy from pageable memory waits for the
    GPU (set_sync_debug_mode("error") raises on it). On the CPU it pins nothing."""
    calls = []
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    real_to = torch.Tensor.to

    def to(self: torch.Tensor, device: object, non_blocking: bool = False) -> torch.Tensor:
        calls.append(("to", str(device), non_blocking))
        return self if str(device).startswith("cuda") else real_to(self, device)

    monkeypatch.setattr(torch.Tensor, "to", to)
    assert to_device([3, 4], torch.device("cuda")).tolist() == [3, 4]
    assert calls == ["pin", ("to", "cuda", True)]
    calls.clear()
    to_device(torch.ones(2), CPU)
    assert calls == [("to", "cpu", False)]


def test_search_and_the_warm_up_make_no_tensor_on_a_device_from_python_values(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.tensor(values, device=...) copies from pageable memory: greedy's per-row limits,
    beam search's kept rows and a captured step's forcing flags must go through to_device."""
    FakeCuda(monkeypatch)
    straight = []
    real_tensor = torch.tensor

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        if kwargs.get("device") is not None:
            straight.append(kwargs["device"])
        return real_tensor(*args, **kwargs)

    monkeypatch.setattr(torch, "tensor", spy)
    model = no_dropout_model().eval()
    b = padded_batch(0)
    greedy(model, b.src, b.src_len, [6, 3, 5, 6, 2])        # rows with their own limits
    beam_search(model, b.src, b.src_len, [6, 3, 5, 6, 2], 3, 0.6, 2)
    cfg = TrainConfig(lr=1e-3)
    steps = CapturedSteps(model.train(), make_optimizer(model, cfg, CPU), cfg, CPU, warmup=5,
                          bucket=8)
    steps(b, FORCES["mixed"])  # the warm-up's eager step, forcing flags as a device tensor
    assert straight == []


def test_a_cpu_run_touches_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batching and the RNG state of a CPU run on a machine with GPUs leave CUDA alone."""
    def touched(*args: object, **kwargs: object) -> None:
        raise AssertionError("CUDA touched in a CPU run")

    for name in ("is_available", "get_rng_state_all", "get_rng_state", "set_rng_state",
                 "set_rng_state_all", "device_count"):
        monkeypatch.setattr(torch.cuda, name, touched)
    monkeypatch.setattr(torch.Tensor, "pin_memory", touched)
    import pandas as pd

    ids = pd.DataFrame({"fr_ids": [[5, 6, 3]] * 4, "en_ids": [[7, 3]] * 4, "line": range(4)})
    split = Split(ids)
    assert len(list(split.sortish(2, __import__("numpy").random.default_rng(0)))) == 2
    split.batch([0, 1]).to(CPU)
    state = rng_state(CPU)
    assert set(state) == {"torch_rng"}
    restore_rng({**state, "cuda_rng": [torch.zeros(3)]}, ONE, CPU)


def test_resume_restores_this_gpu_s_rng_whatever_the_saving_machine_had(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint from a machine with more GPUs, or fewer, or one state per process."""
    set_to = []
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": set_to.append((int(state[0]), str(device))))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail(
        "set_rng_state_all fails on a machine with fewer GPUs than the saving one"))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cpu_rng = torch.get_rng_state()
    three = {"torch_rng": cpu_rng, "cuda_rng": [torch.tensor([10]), torch.tensor([11]),
                                                torch.tensor([12])]}  # an older checkpoint
    restore_rng(three, ONE, torch.device("cuda", 1))      # fewer GPUs here: this one's state
    restore_rng(three, ONE, torch.device("cuda"))         # the current device's
    restore_rng({"torch_rng": cpu_rng, "cuda_rng": [torch.tensor([10])]}, ONE,
                torch.device("cuda", 2))                  # more GPUs here than saved: skipped
    restore_rng({"torch_rng": cpu_rng, "cuda_rng": torch.tensor([20])}, ONE,
                torch.device("cuda", 0))                  # one state: this process's GPU
    assert set_to == [(11, "cuda:1"), (10, "cuda"), (20, "cuda:0")]

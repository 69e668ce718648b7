"""The CUDA path checked in one command: correctness first, then speed. Under 3 minutes on a GPU.

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py [--steps 20] [--variants ...]

It prints a header (torch, CUDA, cuDNN, the device) first, then each section's verdict as the
section ends, so a run cut off by its time limit still says what it found; a section that fails
is reported and the next one runs. Sections:

Everywhere (CPU included):
- ops: every variant's whole training step (train-mode forward, the loss as CUDA computes it,
  backward, clipping, capturable fused Adam with a tensor lr) under a dispatch spy: no host
  read, no tensor from Python values, no copy between devices. And its op count against the
  lesson-style reference's (tests/support/reference.py), for each forcing mode the variant trains
  in, at the shapes CapturedSteps captures: the lesson's longest batch (125 x source 30 x
  target 25, captured as it is: the bucket does not round past the longest length), and a
  shorter batch the bucket pads by three decoder steps (29 x 21, captured as 30 x 24), each
  against the reference at its true lengths. BENCHMARKS.md ("Counting a step's ops") says how
  ops are counted. More ops than the reference's on the longest batch is a failure; the padded
  batch's ratio is reported as it is (its padding is work the reference does not do).

With CUDA, also:
1. captured vs eager training over three shapes (forced, free and mixed forcing), the learning
   rate changed between capture and replay, a resume from a checkpoint mapped to the CPU
   halfway, and every step after the sixth (replays and the resumed warm-ups) under
   torch.cuda.set_sync_debug_mode("error"): final weights must agree;
2. a capture made to fail (capture_end raises): the current stream is restored, that shape
   trains eagerly, and the weights equal an eager run's;
3. the GRUs' output dtype under bf16 autocast (why bf16 is refused for the GRU variants);
4. per variant at the lesson's sizes, with the default bucket, mixed forcing and TF32 as
   training sets them: ms per step and CUDA kernels per step (torch.profiler) for the
   reference, the eager step and the captured step, and the memory the graphs reserved (the
   transformer has no reference: its speed-up is over its own eager step).
Exits 1 if any section failed, 0 otherwise (a machine without CUDA: after the CPU section).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.reference import reference_loss, reference_step  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from pipeline.data.batches import Batch  # noqa: E402
from pipeline.models.build import build_model  # noqa: E402
from pipeline.params import (  # noqa: E402
    ModelConfig,
    TrainConfig,
    load_params,
    variant_configs,
    variant_names,
    variant_runtime,
)
from pipeline.training.cuda_graphs import CapturedSteps, bucket, force_mode, pad_batch
from pipeline.training.optimizer import make_optimizer, restore_optimizer, set_lr
from pipeline.training.step import loss_backward, train_step

B, S, T, V_FR, V_EN, EMB = 125, 30, 25, 24_793, 17_573, 300  # the lesson's sizes
HOST_READS = {"_local_scalar_dense", "item", "lift_fresh", "lift_fresh_copy"}
# Ops that launch no kernel: allocations, and views that the schema does not mark as views.
NO_KERNEL = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
             "_unsafe_view", "_reshape_alias"}
failures: list[str] = []


class OpCounter(TorchDispatchMode):
    """Records the ops dispatched and counts the non-view ones; notes host reads, tensors made
    from Python values and copies between devices (each makes a captured step wrong or
    impossible). tests/unit/test_cuda_path.py uses it too.

    as_cuda=True counts what the CPU does differently as CUDA runs it: each GRU call one op
    forward and one backward (a cuDNN call; on the CPU a GRU dispatches its gates and time
    steps one by one), each dropout one op (CUDA fuses the mask and the scaling; the CPU draws,
    scales and multiplies). Their internal ops are still recorded and checked, only not
    counted: a function mode marks the forward ones, and the autograd nodes a GRU made mark
    its backward ones. Allocations, host reads and profiler marks are never counted: they
    launch no kernel.
    """

    def __init__(self, as_cuda: bool = False) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.count = 0
        self.raw = 0  # every non-view aten op, nothing folded: what the CPU runs
        self.bad: list[str] = []
        self.grus = 0  # GRU calls seen (as_cuda)
        self.marks: list[int] = []  # the count at each mark()
        self._gru_nodes: dict = {}  # autograd node made inside a GRU call -> the call's number
        self._gru_backward: set[int] = set()  # calls whose backward was counted
        self._inside = False
        self._calls = _FusedCalls(self) if as_cuda else None

    def mark(self) -> None:
        self.marks.append(self.count)

    def __enter__(self) -> OpCounter:
        if self._calls is not None:
            self._calls.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._calls is not None:
            self._calls.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        self.ops.append(str(func))
        if not func.is_view and func.namespace == "aten":
            self.raw += 1
        if (not func.is_view and not self._inside and name not in HOST_READS | NO_KERNEL
                and func.namespace == "aten"):  # profiler marks are not kernels
            call = self._gru_nodes.get(torch._C._current_autograd_node())
            if call is None:
                self.count += 1
            elif call not in self._gru_backward:  # a GRU's backward: one op per call
                self._gru_backward.add(call)
                self.count += 1
        if name in HOST_READS:
            self.bad.append(f"{func} (a host read or a tensor from Python values)")
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if len({t.device for t in tensors}) > 1 or (
                name in ("_to_copy", "to") and "device" in kwargs and tensors
                and torch.device(kwargs["device"]) != tensors[0].device):
            self.bad.append(f"{func} (a copy between devices)")
        return func(*args, **kwargs)


class _FusedCalls(TorchFunctionMode):
    """OpCounter's helper: a call that is one kernel on CUDA counts one op. A GRU call is one
    cuDNN call forward and one backward (its autograd nodes are remembered for the backward);
    a dropout is CUDA's fused dropout, one kernel (its backward is one op on the CPU too)."""

    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        c = self.counter
        if name not in ("gru", "dropout") or c._inside:
            return func(*args, **kwargs)
        inputs = [t for a in args for t in (a if isinstance(a, (list, tuple)) else [a])
                  if isinstance(t, torch.Tensor)]
        before = {t.grad_fn for t in inputs if t.grad_fn is not None}
        ops = len(c.ops)
        c._inside = True
        try:
            out = func(*args, **kwargs)
        finally:
            c._inside = False
        if len(c.ops) == ops:  # it did nothing (a dropout in eval mode, say)
            return out
        c.count += 1
        if name == "gru":
            c.grus += 1
            todo = [t.grad_fn for t in out if t.grad_fn is not None]
            while todo:  # the nodes between the GRU's outputs and its inputs are its own
                node = todo.pop()
                if node in before or node in c._gru_nodes or not node.next_functions:
                    continue
                c._gru_nodes[node] = c.grus
                todo += [f for f, _ in node.next_functions if f is not None]
        return out


def mixed(steps: int, teacher_forcing: bool, seed: int = 0) -> list[bool]:
    """Teacher-forcing draws at pr 0.5 (what mid-schedule training draws), else all free."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, generator=g) < 0.5).tolist() if teacher_forcing else [False] * steps


def lesson_batch(device: torch.device, seed: int = 0, s: int = S, t: int = T) -> Batch:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V_FR, (B, s), generator=g)
    tgt = torch.randint(4, V_EN, (B, t), generator=g)
    return Batch(src.to(device), torch.full((B,), s).to(device), tgt.to(device), None)


def step(way: str, model: torch.nn.Module, opt: torch.optim.Optimizer, b: Batch,
         force: list[bool], flags: list[bool] | torch.Tensor, cfg: TrainConfig,
         after_backward: Callable[[], None] = lambda: None) -> None:
    """One training step: the reference's (its loss read back, as the lesson did), or the
    project's as a captured step runs it (pipeline.training.step.loss_backward with the loss in one
    call, then the optimizer)."""
    if way == "reference":
        loss = reference_loss(model, b.src, b.src_len, b.tgt, force)
        opt.zero_grad()
        loss.backward()
    else:
        opt.zero_grad(set_to_none=True)
        loss_backward(model, b, cfg, torch.device("cpu"), flags, one_call=True)
    after_backward()
    opt.step()
    if way == "reference":
        loss.item()


FORCINGS = {"free": False, "forced": True}  # teacher forcing's pr 0 and 1; mixed: pr 0.5


def forcing_modes(teacher_forcing: bool) -> list[str]:
    """The forcing modes a variant trains in: teacher forcing goes from pr 1 to pr 0, so all
    three; without it, free running alone."""
    return ["forced", "mixed", "free"] if teacher_forcing else ["free"]


PADDED = (29, 21)  # a batch the bucket pads most: 30 (the cap) and 24, three steps more


def count_ops(params: dict, variant: str, mode: str | None = None,
              lengths: tuple[int, int] = (S, T), captured: bool = True) -> dict:
    """A variant's training step on a batch of 125 with these source and target lengths, the
    project's way and the reference's, counted as CUDA runs them (OpCounter(as_cuda=True)) and
    raw (every non-view aten op): ops up to the end of backward, ops of the whole step, and the
    host reads or device copies in the project's step.

    captured=True: the project's step at the shape CapturedSteps captures for that batch, as
    training on the lesson's data does (lengths rounded up to the variant's runtime.bucket, but
    not past the lesson's longest, 30 and 25; forcing flags padded as it pads them);
    captured=False: unpadded. The reference runs unpadded either way (it captures nothing).
    Small widths: the counts do not depend on them. The second step of each way is counted (the
    first makes Adam's state); the reference's Adam is the one PyTorch picks on CUDA (foreach)."""
    mcfg, tcfg = variant_configs(params, variant)
    mcfg = ModelConfig(**{**mcfg.__dict__, "enc_hidden": 16, "att_hidden": 16})
    size = variant_runtime(params, variant).bucket if captured else 1
    cfg = tcfg
    mode = mode or forcing_modes(cfg.teacher_forcing)[-1 if mcfg.kind == "gru" else 0]
    s, t = lengths
    g = torch.Generator().manual_seed(0)
    b = Batch(torch.randint(4, 50, (B, s), generator=g), torch.full((B,), s),
              torch.randint(4, 40, (B, t), generator=g), None)
    force = mixed(t, True) if mode == "mixed" else [FORCINGS[mode]] * t
    padded = pad_batch(b, bucket(s, size, S), bucket(t, size, T))
    flags = force + [force_mode(force) == "forced"] * (padded.tgt.size(1) - t)
    arg = torch.tensor(flags) if force_mode(force) == "mixed" else flags
    out: dict = {"forcing": force_mode(force), "reference": None,
                 "lengths": (padded.src.size(1), padded.tgt.size(1))}
    # the reference is the lesson's GRU loop: a transformer has none
    for way in ("project", "reference") if mcfg.kind == "gru" else ("project",):
        torch.manual_seed(0)
        model = build_model(mcfg, 50, 40, 16).train()
        if way == "reference":
            opt = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
            batch, how = b, force
        else:
            opt = make_optimizer(model, cfg, torch.device("cpu"), capturable=True)
            batch, how = padded, arg
        step(way, model, opt, batch, force, how, cfg)
        with OpCounter(as_cuda=True) as spy:
            step(way, model, opt, batch, force, how, cfg, spy.mark)
        out[way] = {"backward": spy.marks[0], "step": spy.count, "raw": spy.raw}
        if way == "project":
            out["bad"] = spy.bad
    return out


def cpu_part(params: dict, variants: list[str]) -> None:
    """Host reads and op counts of every variant's step in every forcing mode it trains in
    (count_ops), on the lesson's longest batch (captured as it is) and on a batch the bucket
    pads by three steps; more ops than the reference's on the longest batch is a failure."""
    ps, pt = PADDED
    cs, ct = bucket(ps, 4, S), bucket(pt, 4, T)
    print(f"| variant | forcing | host reads | {S}x{T}: captured | reference | ratio | "
          f"{ps}x{pt} as {cs}x{ct}: captured | reference | ratio | raw {S}x{T}: captured | "
          "reference |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for variant in variants:
        mcfg, tcfg = variant_configs(params, variant)
        for mode in forcing_modes(tcfg.teacher_forcing) if mcfg.kind == "gru" else ["forced"]:
            c, d = count_ops(params, variant, mode), count_ops(params, variant, mode, PADDED)
            if c["bad"] or d["bad"]:
                failures.append(f"{variant} {mode}: host reads or copies in the step: "
                                f"{(c['bad'] + d['bad'])[:3]}")
            cells = []
            for x in (c, d):
                p, r = x["project"], x["reference"]
                cells += [f"{p['step']:,}", "-", "-"] if r is None else [
                    f"{p['step']:,}", f"{r['step']:,}", f"{p['step'] / r['step']:.2f}"]
            r = c["reference"]
            if r is not None and c["project"]["step"] > r["step"]:
                failures.append(f"{variant} {mode}: on the longest batch the captured step "
                                f"dispatches {c['project']['step']} ops, the reference "
                                f"{r['step']}")
            raw = [f"{c['project']['raw']:,}", "-" if r is None else f"{r['raw']:,}"]
            print(f"| {variant} | {c['forcing']} | {len(c['bad'])} | " + " | ".join(cells + raw)
                  + " |", flush=True)


def cuda_correctness(params: dict, dev: torch.device) -> None:
    """Captured training = eager training, over shapes, lr changes and a resume."""
    mcfg, _ = variant_configs(params, "all")
    mcfg = ModelConfig(**{**mcfg.__dict__, "emb_dropout": 0.0, "enc_dropout": 0.0,
                          "dec_dropout": 0.0, "out_dropout": 0.0})
    cfg = TrainConfig(lr=1e-3, clip=1.0, teacher_forcing=True)
    shapes = [(22, 17, [True] * 17), (30, 25, [False] * 25), (14, 11, mixed(11, True, 3))]
    plan = [shapes[i % 3] for i in range(18)]

    def run(captured: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        model = build_model(mcfg, 500, 400, 64).to(dev).train()
        opt = make_optimizer(model, cfg, dev)
        steps = CapturedSteps(model, opt, cfg, dev, warmup=1, bucket=8) if captured else None
        made = [steps]
        for i, (s, t, force) in enumerate(plan):
            if i == 9:  # resume: state through a CPU-mapped checkpoint, fresh objects
                buf = io.BytesIO()
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buf)
                buf.seek(0)
                state = torch.load(buf, map_location="cpu", weights_only=True)
                model = build_model(mcfg, 500, 400, 64).to(dev).train()
                model.load_state_dict(state["model"])
                opt = make_optimizer(model, cfg, dev)
                restore_optimizer(opt, state["optimizer"])
                steps = CapturedSteps(model, opt, cfg, dev, warmup=1, bucket=8) if captured \
                    else None
                made.append(steps)
            set_lr(opt, cfg.lr * (1 + i) / 18)  # changes between capture and every replay
            g = torch.Generator().manual_seed(i)
            batch = Batch(torch.randint(4, 500, (16, s), generator=g),
                          torch.randint(1, s + 1, (16,), generator=g),
                          torch.randint(4, 400, (16, t), generator=g), None)
            if captured:
                if i >= 6:
                    torch.cuda.set_sync_debug_mode("error")  # replays must not sync
                try:
                    steps(batch, force)
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            else:
                padded = pad_batch(batch, -(-s // 8) * 8, -(-t // 8) * 8).to(dev)
                flags = force + [force_mode(force) == "forced"] * (padded.tgt.size(1) - t)
                arg = torch.tensor(flags, device=dev) if force_mode(force) == "mixed" else flags
                train_step(model, padded, opt, cfg, dev, arg)
        if captured:
            print(f"graphs before and after the resume: {[m.stats() for m in made]}")
            failed = {k: v for m in made for k, v in m.failed.items()}
            if failed:  # a capture that fell back hides what it hit: captured = eager
                failures.append(f"captures failed and trained eagerly: {failed}")
        return model

    eager, graphed = run(False), run(True)
    worst = max(float((a - b).detach().abs().max()) for a, b in zip(eager.parameters(),
                                                             graphed.parameters()))
    ok = worst < 1e-3
    print(f"captured vs eager, 18 steps over 3 shapes, lr changing, resumed at step 10: "
          f"max |weight difference| {worst:.2e} -> {'ok' if ok else 'MISMATCH'}")
    if not ok:
        failures.append(f"captured training differs from eager by {worst:.2e}")



def cuda_capture_failure(params: dict, dev: torch.device) -> None:
    """A capture that fails (capture_end raises after the real one ran) must leave the default
    stream current, train that shape eagerly, and end with an eager run's weights."""
    mcfg, _ = variant_configs(params, "all")
    mcfg = ModelConfig(**{**mcfg.__dict__, "emb_dropout": 0.0, "enc_dropout": 0.0,
                          "dec_dropout": 0.0, "out_dropout": 0.0})
    cfg = TrainConfig(lr=1e-3, clip=1.0, teacher_forcing=True)
    force = mixed(11, True, 3)
    g = torch.Generator().manual_seed(0)
    batches = [Batch(torch.randint(4, 500, (16, 14), generator=g),
                     torch.randint(1, 15, (16,), generator=g),
                     torch.randint(4, 400, (16, 11), generator=g), None) for _ in range(4)]
    models = []
    real_end = torch.cuda.CUDAGraph.capture_end

    def failing_end(graph: torch.cuda.CUDAGraph) -> None:
        real_end(graph)
        raise RuntimeError("capture_end made to fail by gpu_check")

    for captured in (False, True):
        torch.manual_seed(0)
        model = build_model(mcfg, 500, 400, 64).to(dev).train()
        opt = make_optimizer(model, cfg, dev)
        steps = CapturedSteps(model, opt, cfg, dev, warmup=1, bucket=8)
        torch.cuda.CUDAGraph.capture_end = failing_end
        try:
            for b in batches:
                if captured:
                    steps(b, force)
                else:
                    padded = pad_batch(b, 16, 16).to(dev)
                    flags = force + [False] * (16 - 11)
                    train_step(model, padded, opt, cfg, dev, torch.tensor(flags, device=dev))
        finally:
            torch.cuda.CUDAGraph.capture_end = real_end
        models.append(model)
        if captured:
            stream = torch.cuda.current_stream(dev)
            if stream != torch.cuda.default_stream(dev):
                failures.append("a failed capture left another stream current")
            if steps.stats()["failed_shapes"] != 1:
                failures.append(f"a failed capture was not recorded: {steps.stats()}")
    worst = max(float((a - b).detach().abs().max()) for a, b in zip(models[0].parameters(),
                                                             models[1].parameters()))
    print(f"failed capture: stream restored, shape trained eagerly, max |weight difference| "
          f"from eager {worst:.2e}")
    if worst > 1e-5:
        failures.append(f"after a failed capture the weights differ from eager by {worst:.2e}")


def cuda_bf16_dtype(dev: torch.device) -> None:
    gru = torch.nn.GRU(64, 64, 2, batch_first=True).to(dev)
    x = torch.randn(8, 5, 64, device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, _ = gru(x)
        enc = torch.gru(x, torch.zeros(1, 8, 64, device=dev),
                        [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0],
                        True, 1, 0.0, True, False, True)[0]
    print(f"GRU output dtype under bf16 autocast: nn.GRU {out.dtype}, torch.gru {enc.dtype} "
          "(train.precision bf16 is refused on CUDA for the GRU variants unless both are "
          "bfloat16; the transformer has no RNN)")


def cuda_speed(params: dict, variants: list[str], dev: torch.device, n: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as fit
    print("\n| variant | way | ms/step | CUDA kernels/step | speed-up | graph MB |")
    print("|---|---|---:|---:|---:|---:|")
    for variant in variants:
        mcfg, tcfg = variant_configs(params, variant)
        cfg = TrainConfig(**{**tcfg.__dict__, "lr": 1e-4})  # TF32 as fit sets it
        rt = variant_runtime(params, variant)
        force = mixed(T, cfg.teacher_forcing)
        host = lesson_batch(torch.device("cpu"))
        host = Batch(host.src.pin_memory(), host.src_len.pin_memory(), host.tgt.pin_memory(),
                     None)
        dbatch = lesson_batch(dev)
        ways, extra = {}, {}
        if mcfg.kind == "gru":  # the lesson's loop; a transformer's speed-up is over eager
            torch.manual_seed(0)
            ref = build_model(mcfg, V_FR, V_EN, EMB).to(dev).train()
            ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-4)
            ways["reference"] = partial(reference_step, ref, ref_opt, dbatch.src,
                                        dbatch.src_len, dbatch.tgt, force)
        torch.manual_seed(0)
        m = build_model(mcfg, V_FR, V_EN, EMB).to(dev).train()
        o = make_optimizer(m, cfg, dev)
        flags = torch.tensor(force, device=dev) if force_mode(force) == "mixed" else force
        ways["eager"] = partial(train_step, m, dbatch, o, cfg, dev, flags)
        torch.manual_seed(0)
        m2 = build_model(mcfg, V_FR, V_EN, EMB).to(dev).train()
        o2 = make_optimizer(m2, cfg, dev)
        steps = CapturedSteps(m2, o2, cfg, dev, max_lengths=(S, T), bucket=rt.bucket)
        ways["captured"] = partial(steps, host, force)
        times: dict[str, list[float]] = {k: [] for k in ways}
        kernels: dict[str, int] = {}
        for i in range(5 + n):
            for way, fn in ways.items():
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                if i >= 5:
                    times[way].append(time.perf_counter() - t0)
        for way, fn in ways.items():
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            kernels[way] = sum(1 for e in prof.events()
                               if e.device_type.name == "CUDA" and not e.name.startswith("Memcpy")
                               and not e.name.startswith("Memset"))
        extra["captured"] = steps.stats()
        reference = statistics.median(times["reference" if "reference" in times else "eager"])
        for way in ways:
            t = statistics.median(times[way])
            mb = extra.get(way, {}).get("graph_memory_mb", "")
            print(f"| {variant} | {way} | {t * 1e3:.1f} | {kernels[way]:,} | "
                  f"{reference / t:.2f}x | {mb} |", flush=True)


def section(name: str, run: Callable[[], None]) -> None:
    """Run one section, then print its verdict at once; an exception fails it, not the run."""
    print(f"\n## {name}", flush=True)
    t0, before = time.perf_counter(), len(failures)
    try:
        run()
    except Exception as e:  # noqa: BLE001 - report it and go on to the next section
        failures.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    new = failures[before:]
    verdict = "ok" if not new else "FAILED: " + "; ".join(new)
    print(f"-> {name}: {verdict} ({time.perf_counter() - t0:.1f}s)", flush=True)


def header() -> str:
    if not torch.cuda.is_available():
        return f"gpu_check: torch {torch.__version__}, no CUDA device"
    return (f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}, {torch.cuda.device_count()} x "
            f"{torch.cuda.get_device_name()}")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # a cut-off run still shows what it printed
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per way and variant")
    ap.add_argument("--variants", nargs="*", default=variant_names())
    args = ap.parse_args()
    print(header(), flush=True)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    section("ops (CPU)", lambda: cpu_part(params, args.variants))
    if not torch.cuda.is_available():
        print("\ngpu_check: no CUDA here: the CPU section above ran; the others need a GPU")
    else:
        dev = torch.device("cuda")
        section("captured = eager", lambda: cuda_correctness(params, dev))
        section("failed capture", lambda: cuda_capture_failure(params, dev))
        section("bf16 GRU dtype", lambda: cuda_bf16_dtype(dev))
        section("speed", lambda: cuda_speed(params, args.variants, dev, args.steps))
    if failures:
        print("\ngpu_check: FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("\ngpu_check: all checks passed")


if __name__ == "__main__":
    main()

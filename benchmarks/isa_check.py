"""Does the metrics gate's arithmetic depend on the CPU? Fingerprints of its work, compared.

    python benchmarks/isa_check.py              # fingerprints of this process, as it is set
    python benchmarks/isa_check.py --compare    # this CPU as it is and pinned (ci/isa.env),
                                                # and, with qemu-x86_64, emulated CPUs too

The gate (ci/pipeline.sh) trains every variant for two epochs and compares the metrics with a
baseline made on another machine. PyTorch's libraries pick their kernels by instruction set
(ATen's vectorized kernels, oneDNN, MKL's GEMM and vector math), kernels of different sets
round differently, and training amplifies that: unpinned, an AVX2-only CPU and an AVX-512 one
end two epochs apart by up to a BLEU point. ci/isa.env pins the sets; this script checks that
the pin makes the arithmetic the same.

What it fingerprints (SHA-1 of the bytes, first 10 hex digits), on data it makes itself:
- kernels: exp, log, sqrt, tanh, a reduction, a GEMM, log-softmax (which library answers
  which; diagnostics, not part of the verdict: MKL's vector math rounds differently on Intel
  and AMD whatever the pin, and the gate does not use it);
- fasttext: skip-gram vectors trained on a made-up corpus (the embeddings stage's library);
- per variant: a scaled-down model (below) at the gate's batch size, the embedding init from
  vectors, 3 training steps with the variant's params (dropout, teacher forcing, label
  smoothing, the fused Adam, the one-cycle lr): the losses, the trained weights, the validation
  loss, greedy search's output, beam search's output and scores.

With --compare it runs itself in child processes: this CPU as it is, this CPU under the pin,
and under qemu-x86_64's user-mode emulator as other CPU models (default EPYC-Milan, the AVX2-only
AMD of the report, as is and pinned, and Haswell, an AVX2-only Intel, pinned). The emulator
reports the model's CPUID, so every library dispatches as it would on that CPU. It exits 1 if
the pinned runs disagree. Under emulation a run takes minutes; natively, seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pipeline.params import variant_names  # noqa: E402

# The gate's batch, lengths and threads; vocabularies and widths scaled down (the gate's are
# 3537/2201 words, 300/256 wide), since an emulated GEMM runs about 10,000x slower than native.
V_FR, V_EN, EMB, HIDDEN, B, STEPS, THREADS = 400, 300, 48, 64, 16, 3, 2


def digest(*arrays) -> str:  # noqa: ANN002 - tensors or numpy arrays
    h = hashlib.sha1()
    for a in arrays:
        a = a.detach().cpu().contiguous().numpy() if hasattr(a, "detach") else a
        h.update(a.tobytes())
    return h.hexdigest()[:10]


def note(what: str, t0: float) -> None:
    print(f"isa_check: {what} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)


def fingerprints(variants: list[str]) -> dict[str, str]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from pipeline.data.batches import Batch
    from pipeline.decoding.search import beam_search, greedy
    from pipeline.evaluation.metrics import validation_loss
    from pipeline.models.build import build_model
    from pipeline.params import load_params, variant_configs
    from pipeline.training.optimizer import make_optimizer, one_cycle_lr, set_lr
    from pipeline.training.step import train_step

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    out: dict[str, str] = {}
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, 57, generator=g), torch.randn(57, 111, generator=g)
    out["kernels: exp, log, sqrt (MKL VML)"] = digest(a.exp(), a.abs().add(1).log(),
                                                      a.abs().sqrt())
    out["kernels: tanh, sigmoid, sum (ATen)"] = digest(a.tanh(), a.sigmoid(), a.sum(0))
    out["kernels: GEMM (MKL)"] = digest(a @ b)
    out["kernels: log_softmax (ATen)"] = digest(F.log_softmax(a @ b, -1))

    import fasttext  # in this process: under the emulator a child would run natively

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    zipf = 1 / np.arange(1, 301)
    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d) / "corpus.txt"
        corpus.write_text("\n".join(" ".join(rng.choice(words, size=8, p=zipf / zipf.sum()))
                                    for _ in range(1500)) + "\n")
        ft = fasttext.train_unsupervised(str(corpus), model="skipgram", dim=EMB, epoch=2,
                                         minCount=1, minn=3, maxn=6, bucket=2000, thread=1,
                                         verbose=0)
        out["fasttext skip-gram"] = digest(np.stack([ft.get_word_vector(w) for w in words]))
    note("kernels and fastText", t0)

    params = load_params(ROOT / "params.yaml")
    device = torch.device("cpu")
    src = torch.randint(4, V_FR, (B * STEPS + 32, 16), generator=g)
    tgt = torch.randint(4, V_EN, (B * STEPS + 32, 14), generator=g)
    src_len = torch.randint(5, 17, (B * STEPS + 32,), generator=g)
    for i, n in enumerate(src_len.tolist()):
        src[i, n:] = 1  # padding
        tgt[i, max(3, n - 2):] = 1
    vec_fr, vec_en = torch.randn(V_FR, EMB, generator=g), torch.randn(V_EN, EMB, generator=g)
    for variant in variants:
        mcfg, tcfg = variant_configs(params, variant)
        mcfg = type(mcfg)(**{**mcfg.__dict__, "enc_hidden": HIDDEN, "att_hidden": HIDDEN})
        torch.manual_seed(0)
        model = build_model(mcfg, V_FR, V_EN, EMB, vec_fr, vec_en).train()
        opt = make_optimizer(model, tcfg, device)
        coin = np.random.default_rng(1)
        losses = []
        for s in range(STEPS):
            rows = slice(s * B, (s + 1) * B)
            n = int(src_len[rows].max())
            batch = Batch(src[rows, :n], src_len[rows], tgt[rows, : max(3, n - 2)], None)
            set_lr(opt, one_cycle_lr(s, STEPS, tcfg.lr, tcfg.clr_div, tcfg.clr_pct))
            force = [bool(coin.random() < 0.5) if tcfg.teacher_forcing else False
                     for _ in range(batch.tgt.size(1))]
            losses.append(train_step(model, batch, opt, tcfg, device, force))
        held = slice(B * STEPS, None)

        held_out = Batch(src[held], src_len[held], tgt[held], None)
        valid = SimpleNamespace(sorted=lambda batch_size, b=held_out: iter([b]))  # a Split's
        val = torch.tensor(validation_loss(model, valid, 32, device))
        hyps, _ = greedy(model, src[held], src_len[held], 14)
        beams = beam_search(model, src[held], src_len[held], 14, beam_size=5, alpha=0.6)
        out[f"{variant}: training losses"] = digest(torch.stack(losses))
        out[f"{variant}: trained weights"] = digest(*model.parameters())
        out[f"{variant}: val_loss"] = digest(val)
        out[f"{variant}: greedy"] = digest(torch.tensor([t for h in hyps for t in h + [-1]]))
        out[f"{variant}: beam"] = digest(
            torch.tensor([t for row in beams for t in row[0].ids + [-1]]))
        out[f"{variant}: beam scores"] = digest(
            torch.tensor([row[0].score for row in beams], dtype=torch.float64))
        note(variant, t0)
    return out


def read_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "ci" / "isa.env").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def child(emulate: str | None, pinned: bool, variants: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in read_pins()}
    env["MALLOC_PERTURB_"] = "255"  # fastText reads memory it never initialized (embeddings.py)
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads that spin cost a core when emulated
    if pinned:
        env.update(read_pins())
    cmd = [sys.executable, __file__, "--json", "--variants", *variants]
    if emulate:
        cmd = ["qemu-x86_64", "-cpu", emulate, *cmd]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=None, text=True)
    if run.returncode != 0:
        raise SystemExit(f"isa_check: {' '.join(cmd)} failed (exit {run.returncode})")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - t0
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", action="store_true", help="compare child runs (see above)")
    ap.add_argument("--cpus", nargs="*", default=["EPYC-Milan", "Haswell"],
                    help="qemu-x86_64 CPU models to emulate (none: this CPU only)")
    ap.add_argument("--variants", nargs="*", default=variant_names(kind="gru"))
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.compare:
        import torch

        result = {"capability": torch.backends.cpu.get_cpu_capability(),
                  **fingerprints(args.variants)}
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}"
                                                              for k, v in result.items()))
        return
    runs: dict[str, dict] = {}
    cpus = args.cpus if shutil.which("qemu-x86_64") else []
    if args.cpus and not cpus:
        print("isa_check: qemu-x86_64 not found (apt-get install qemu-user): this CPU only")
    from pipeline.evaluation.gate.runs import cpu_name

    here = cpu_name()
    plan = [(f"{here}, as is", None, False), (f"{here}, pinned", None, True)]
    for i, c in enumerate(cpus):  # the first emulated CPU also as is, to show the drift
        plan += [(f"qemu {c}, as is", c, False)] if i == 0 else []
        plan += [(f"qemu {c}, pinned", c, True)]
    for label, emulate, pinned in plan:
        print(f"isa_check: running {label} ...", flush=True)
        runs[label] = child(emulate, pinned, args.variants)
    pins = " ".join(f"{k}={v}" for k, v in read_pins().items())
    print(f"\npin (ci/isa.env): {pins}\ntorch {__import__('torch').__version__}, "
          f"{THREADS} threads\n")
    labels = list(runs)
    keys = [k for k in runs[labels[0]] if k != "seconds"]
    print("| fingerprint | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for k in [*keys, "seconds"]:
        cells = [f"{runs[r][k]:.1f}" if k == "seconds" else str(runs[r][k]) for r in labels]
        print(f"| {k} | " + " | ".join(cells) + " |")
    pinned = [r for r in labels if r.endswith("pinned")]
    # the kernels rows say which library answers which; the verdict is on what the gate runs
    # (MKL's vector math, sqrt among it, differs between Intel and AMD whatever the pin, and
    # the gate does not use it: Adam is the fused one)
    checked = [k for k in keys if not k.startswith("kernels") and k != "capability"]
    differ = [k for k in checked if len({runs[r][k] for r in pinned}) > 1]
    print()
    if differ:
        print(f"isa_check: the pinned runs differ in: {', '.join(differ)}")
        sys.exit(1)
    print(f"isa_check: the {len(pinned)} pinned runs agree on all {len(checked)} fingerprints "
          "of the gate's work")


if __name__ == "__main__":
    main()

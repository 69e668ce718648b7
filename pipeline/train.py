"""Training: Adam, the lesson's one-cycle schedule, teacher forcing, checkpoints that resume.

A run is repeatable on the CPU: the batch order and the teacher-forcing draws of an epoch come
from generators seeded by (seed, epoch), and each checkpoint holds torch's RNG state, so a run
killed after epoch k and resumed ends with the same weights as a run never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.data import Batch, Split
from pipeline.files import PipelineError, atomic_path
from pipeline.model import Seq2Seq
from pipeline.params import TrainConfig
from pipeline.vocab import PAD


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("train.device: cuda was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def one_cycle_lr(it: int, total: int, lr: float, div: float, pct: float) -> float:
    """The lesson's CircularLR (use_clr=(div, pct)): lr/div up to lr over the first 1/pct of
    the iterations, then linearly back down to lr/div."""
    cut = max(1, total // int(pct))
    frac = it / cut if it <= cut else 1 - (it - cut) / max(1, total - cut)
    return lr * (1 + frac * (div - 1)) / div


def pr_force(epoch: int, cfg: TrainConfig) -> float:
    """Probability of teacher forcing in `epoch` (0-based): start -> end over pr_force_epochs."""
    if not cfg.teacher_forcing:
        return 0.0
    frac = min(epoch, cfg.pr_force_epochs) / max(1, cfg.pr_force_epochs)
    return cfg.pr_force_start + (cfg.pr_force_end - cfg.pr_force_start) * frac


def seq_loss(logits: torch.Tensor, tgt: torch.Tensor, pad_in_loss: bool = False) -> torch.Tensor:
    """Cross-entropy per target token. pad_in_loss=True is the lesson's loss: logits are padded
    with zeros or cut to the target's length and every position counts, padding included."""
    t = tgt.size(1)
    if logits.size(1) < t:
        logits = F.pad(logits, (0, 0, 0, t - logits.size(1)))
    logits = logits[:, :t]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt.reshape(-1),
                           ignore_index=-100 if pad_in_loss else PAD)


def autocast(device: torch.device, precision: str):  # noqa: ANN201 - a context manager
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device
                   ) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                            weight_decay=cfg.weight_decay, fused=device.type == "cuda")


def train_step(model: Seq2Seq, batch: Batch, opt: torch.optim.Optimizer, cfg: TrainConfig,
               device: torch.device, force: list[bool]) -> float:
    with autocast(device, cfg.precision):
        loss = model.loss(batch.src, batch.src_len, batch.tgt, force, cfg.pad_in_loss,
                          cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
    opt.step()
    return loss.item()


@torch.no_grad()
def validation_loss(model: Seq2Seq, valid: Split, batch_size: int, device: torch.device,
                    precision: str = "fp32") -> float:
    """Teacher-forced cross-entropy per target token, padding ignored."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in valid.sorted(batch_size):
        batch = batch.to(device)
        with autocast(device, precision):
            loss = model.loss(batch.src, batch.src_len, batch.tgt, [True] * batch.tgt.size(1))
        n = int((batch.tgt != PAD).sum())
        total += loss.item() * n
        tokens += n
    return total / tokens


def fingerprint(*parts: object) -> str:
    """Identifies what a checkpoint was trained on: a resume must not mix runs."""
    text = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, fp: str) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint: say so, start over
        print(f"train: ignoring unreadable checkpoint {path} ({e})")
        return None
    if state.get("fingerprint") != fp:
        print(f"train: {path} is from other params or data; starting over")
        return None
    return state


def fit(model: Seq2Seq, train: Split, valid: Split, cfg: TrainConfig, device: torch.device,
        checkpoint: Path, fp: str, state: dict | None = None,
        log: Callable[[dict], None] | None = None, stop_after: int | None = None) -> dict:
    """Train for cfg.epochs, starting from `state` (a loaded checkpoint) when given.

    A checkpoint tagged `fp` is written to `checkpoint` after every epoch, and `log(values)`
    called. `stop_after` ends this call after that many epochs (tests of resuming use it).
    Returns the history and the training time.
    """
    model.to(device)
    opt = make_optimizer(model, cfg, device)
    batches = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * batches
    start, history, seconds = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start, history, seconds = state["epoch"], state["history"], state["seconds"]
        print(f"train: resuming after epoch {start} from {checkpoint}")
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        coin = random.Random(cfg.seed * 1_000_003 + epoch)
        pr = pr_force(epoch, cfg)
        running, it = 0.0, epoch * batches
        bar = tqdm(train.sortish(cfg.batch_size, rng), total=batches, mininterval=1.0,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None, leave=False)
        for i, batch in enumerate(bar):
            for g in opt.param_groups:
                g["lr"] = one_cycle_lr(it, total, cfg.lr, cfg.clr_div, cfg.clr_pct)
            force = [coin.random() < pr for _ in range(batch.tgt.size(1))]
            loss = train_step(model, batch.to(device), opt, cfg, device, force)
            if not math.isfinite(loss):
                raise PipelineError(f"train: loss became {loss} at epoch {epoch + 1}; "
                                    "lower train.lr or set train.clip")
            running = loss if i == 0 else 0.98 * running + 0.02 * loss
            bar.set_postfix(loss=f"{running:.3f}")
            it += 1
        bar.close()
        val = validation_loss(model, valid, cfg.batch_size, device, cfg.precision)
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": running, "val_loss": val,
                        "pr_force": pr, "lr": opt.param_groups[0]["lr"]})
        print(f"epoch {epoch + 1}/{cfg.epochs}: train_loss {running:.4f} val_loss {val:.4f} "
              f"({seconds:.0f}s)", flush=True)
        if log is not None:
            log(history[-1])
        save_checkpoint(checkpoint, {
            "fingerprint": fp, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
            "history": history, "seconds": seconds,
        })
        if stop_after is not None and epoch + 1 - start >= stop_after:
            break
    return {"history": history, "seconds": seconds, "epochs": len(history)}


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def file_digest(*paths: str | Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def prepare(params: dict, variant: str, processed: str | Path):
    """Configs, data splits, vocabularies and a freshly built model for `variant`.

    Returns (model_cfg, train_cfg, train, valid, vocab_fr, vocab_en, model, data_digest).
    """
    from pipeline.data import load_splits
    from pipeline.files import read_json
    from pipeline.model import build_model
    from pipeline.params import variant_configs

    processed = Path(processed)
    mcfg, tcfg = variant_configs(params, variant)
    set_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    files = [processed / n for n in ("ids.parquet", "emb_fr.npy", "emb_en.npy")]
    for f in files:
        if not f.exists():
            raise PipelineError(f"{f}: missing; run `dvc repro embeddings` first")
    train, valid = load_splits(str(files[0]))
    vocab_fr = read_json(processed / "vocab_fr.json")
    vocab_en = read_json(processed / "vocab_en.json")
    emb_fr, emb_en = (torch.from_numpy(np.load(f)) for f in files[1:])
    model = build_model(mcfg, len(vocab_fr), len(vocab_en), emb_fr.shape[1], emb_fr, emb_en)
    return mcfg, tcfg, train, valid, vocab_fr, vocab_en, model, file_digest(*files)

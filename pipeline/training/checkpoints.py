"""Checkpoints that resume a run exactly: tagged with a fingerprint of what the run trains on,
holding every process's random generators."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from pipeline.files import atomic_path
from pipeline.training.distributed import World


def fingerprint(*parts: object) -> str:
    """Identifies what a checkpoint was trained on: a resume must not mix runs."""
    text = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(*paths: str | Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, tag: str) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint: say so, start over
        print(f"train: ignoring unreadable checkpoint {path} ({e})")
        return None
    if state.get("fingerprint") != tag:
        print(f"train: {path} is from other params or data; starting over")
        return None
    return state


def rng_state(device: torch.device) -> dict:
    """This process's random generators (dropout), as a checkpoint holds them: the CPU's, and
    its own GPU's when it trains on one (a CPU run touches no GPU, whatever the machine has)."""
    return {"torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}


def restore_rng(state: dict, world: World, device: torch.device) -> None:
    """Each process's generators from the checkpoint; with a different number of processes,
    rank 0 takes the first one's and the others keep their fresh seeds. The GPU's state goes to
    this process's GPU, whatever number of GPUs the saving machine had (an older checkpoint
    holds a list of all of them: this GPU's entry is taken when there is one)."""
    saved = state.get("rank_rng")
    mine = saved[world.rank] if saved and len(saved) == world.size else (
        state if world.rank == 0 else None)
    if mine is None:
        return
    torch.set_rng_state(mine["torch_rng"])
    cuda = mine.get("cuda_rng")
    if device.type != "cuda" or cuda is None:
        return
    if isinstance(cuda, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        cuda = cuda[index] if index < len(cuda) else None
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)

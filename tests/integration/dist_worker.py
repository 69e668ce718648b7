"""A small training run for tests/integration/test_distributed.py: `fit` on made-up pairs,
started on N processes through pipeline.training.distributed.launch the way stages/train.py
starts itself.

    python tests/integration/dist_worker.py OUT_DIR VARIANT PROCESSES EPOCHS [--dropout]
        [--stop-after K]

Each process writes OUT_DIR/pid.RANK; the run's checkpoint is OUT_DIR/checkpoint.RANK.pt, so a
test can see which processes wrote one (only rank 0 may); rank 0 saves the final weights to
OUT_DIR/weights.pt and every logged epoch to OUT_DIR/log.RANK.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipeline.data.batches import Split  # noqa: E402
from pipeline.errors import (
    PipelineError,
    run_main,  # noqa: E402
)
from pipeline.evaluation.metrics import validation_loss  # noqa: E402
from pipeline.models.build import build_model  # noqa: E402
from pipeline.params import ModelConfig, TrainConfig  # noqa: E402
from pipeline.runtime import set_threads  # noqa: E402
from pipeline.training import distributed  # noqa: E402
from pipeline.training.checkpoints import load_checkpoint  # noqa: E402
from pipeline.training.train import Checkpointing, TrainingRun, fit  # noqa: E402

SRC_V, TGT_V, EMB = 40, 30, 16


def pairs(n: int, seed: int) -> Split:
    """Made-up id sequences of varied lengths, each ending in _eos_ (2), as the vocab makes."""
    g = np.random.default_rng(seed)
    rows = [{"fr_ids": list(g.integers(4, SRC_V, g.integers(1, 9))) + [2],
             "en_ids": list(g.integers(4, TGT_V, g.integers(1, 7))) + [2], "line": i}
            for i in range(n)]
    return Split(pd.DataFrame(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("variant")
    ap.add_argument("processes", type=int)
    ap.add_argument("epochs", type=int)
    ap.add_argument("--dropout", action="store_true")
    ap.add_argument("--stop-after", type=int)
    ap.add_argument("--pairs", type=int, default=33)
    ap.add_argument("--raise-on-rank", type=int, help="this process fails after the first epoch")
    args = ap.parse_args()
    if args.processes > 1 and not distributed.in_worker():
        distributed.launch(args.processes, [sys.executable, *sys.argv], "dist_worker")
        return
    world, device = distributed.init(torch.device("cpu"), 30)
    with distributed.process_group(world):
        (args.out / f"pid.{world.rank}").write_text(str(os.getpid()))
        set_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        torch.manual_seed(0)
        p = 0.2 if args.dropout else 0.0
        attention = args.variant == "attention"
        model_cfg = ModelConfig(bidirectional=attention, attention=attention, enc_hidden=12,
                           att_hidden=8, emb_dropout=p, enc_dropout=p, dec_dropout=p,
                           out_dropout=p)
        # 33 pairs in batches of 8: the last global batch has one row, so one process's
        # share of it is empty
        cfg = TrainConfig(epochs=args.epochs, lr=3e-3, batch_size=8, teacher_forcing=True,
                          pr_force_start=0.5, pr_force_end=0.5, label_smoothing=0.1,
                          clip=1.0)
        model = build_model(model_cfg, SRC_V, TGT_V, EMB)
        checkpoint = args.out / f"checkpoint.{world.rank}.pt"
        # as in stages/train.py: rank 0 reads the checkpoint and hands it to the others
        state = distributed.from_main(
            load_checkpoint(checkpoint, "fp") if world.main else None, world)
        log_file = args.out / f"log.{world.rank}"

        def score(m: torch.nn.Module) -> dict[str, float]:
            # train.keep's scores: the first process alone makes them (stages/train.py
            # decodes there); a function of the weights, so a resume scores as the run did
            if not world.main:
                raise PipelineError(f"process {world.rank} was asked for the scores")
            return {"val_bleu": -validation_loss(m, pairs(12, 2), 8, device), "val_chrf": 0.0}

        def log(values: dict) -> None:
            with open(log_file, "a") as f:
                f.write(json.dumps(values) + "\n")

        run = TrainingRun(model, pairs(args.pairs, 1), pairs(12, 2), cfg, device, world=world)
        if args.raise_on_rank is not None:  # a failure of one process, not of the others
            fit(run, Checkpointing(checkpoint, "fp", state), score, log, pause_after=1)
            if world.rank == args.raise_on_rank:
                raise PipelineError("made-up failure in one process")

        # fit logs and checkpoints on rank 0 only
        fit(run, Checkpointing(checkpoint, "fp", state), score, log, args.stop_after)
        if world.main:
            torch.save(model.state_dict(), args.out / "weights.pt")


if __name__ == "__main__":
    run_main(main)

"""Short measured runs that chose the transformer variant's defaults in params.yaml.

    python benchmarks/transformer_sizes.py [--epochs 8] [--only NAME ...]

Run from a workspace whose data stages are done (`dvc repro embeddings`). Each candidate is
the `transformer` variant of params.yaml with a few keys changed; it trains with `fit` exactly
as train@transformer does (scores after every epoch, the best epoch kept) for --epochs
epochs, and the table gives the kept epoch's greedy val BLEU and chrF, the validation loss, the
seconds an epoch took, and of them the seconds the per-epoch scoring took. One process at a
time: timings on 2 cores mean nothing otherwise.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data.batches import whole_set  # noqa: E402
from pipeline.data.truecase import truecaser  # noqa: E402
from pipeline.data.units import Words  # noqa: E402
from pipeline.decoding.search import OutputLimit  # noqa: E402
from pipeline.evaluation.metrics import greedy_scores  # noqa: E402
from pipeline.files import read_json  # noqa: E402
from pipeline.params import EvaluateParams, TokenizeParams, load_params, section  # noqa: E402
from pipeline.training.prepare import prepare  # noqa: E402
from pipeline.training.train import Checkpointing, TrainingRun, fit  # noqa: E402

# name: (model keys, train keys) laid over variants.transformer and these (what the runs of
# 2026-12-01 shared, whatever params.yaml says now)
BASE = ({"heads": 4, "dropout": 0.3, "emb_dropout": 0.15},
        {"betas": [0.9, 0.98], "clr_pct": 5, "clr_div": 20, "label_smoothing": 0.1})
CANDIDATES = {
    "2x2 ff512 b16": ({"enc_layers": 2, "dec_layers": 2, "ff_size": 512},
                      {"batch_size": 16, "lr": 5e-4}),
    "2x2 ff512 b64": ({"enc_layers": 2, "dec_layers": 2, "ff_size": 512},
                      {"batch_size": 64, "lr": 1e-3}),
    "2x2 ff512 b16 lr1e-3": ({"enc_layers": 2, "dec_layers": 2, "ff_size": 512},
                             {"batch_size": 16, "lr": 1e-3}),
    "3x3 ff1024 b16 lr1e-3": ({"enc_layers": 3, "dec_layers": 3, "ff_size": 1024},
                              {"batch_size": 16, "lr": 1e-3}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--only", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--processed", default="data/processed")
    args = ap.parse_args()
    base = load_params()
    ev = section(base, "evaluate", EvaluateParams)
    limit = OutputLimit.of(ev)
    tokens = pd.read_parquet("data/interim/tokens.parquet").set_index("line")
    questions = pd.read_parquet("data/interim/questions.parquet").set_index("line")
    tc = truecaser(read_json("data/processed/truecase_en.json"))
    dev = torch.device("cpu")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {args.epochs} epochs each")
    print("| candidate | params | kept epoch | val BLEU | val chrF | val_loss | s/epoch | "
          "scoring s/epoch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.only:
        model_keys, train_keys = CANDIDATES[name]
        params = copy.deepcopy(base)
        over = params["variants"]["transformer"]
        over["model"] = {**over["model"], **BASE[0], **model_keys}
        over["train"] = {**over["train"], **BASE[1], **train_keys, "epochs": args.epochs}
        ready = prepare(params, "transformer", args.processed)
        units = Words(section(params, "tokenize", TokenizeParams), ready.vocab_fr, tc)
        whole = whole_set(ready.valid, tokens, questions, ready.vocab_fr, units)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            run = TrainingRun(ready.model, ready.train, ready.valid, ready.train_cfg, dev)
            out = fit(run, Checkpointing(Path(tmp) / "ckpt.pt", "sizes"),
                      lambda m, w=whole, v=ready.vocab_en, u=units: greedy_scores(
                          m, w, v, u, ev.batch_size, limit, dev))
        seconds = (time.perf_counter() - t0) / out["epochs"]
        kept = out["history"][out["best_epoch"] - 1]
        n = sum(p.numel() for p in ready.model.parameters())
        print(f"| {name} | {n / 1e6:.1f} M | {out['best_epoch']} | {kept['val_bleu']:.1f} | "
              f"{kept['val_chrf']:.1f} | {kept['val_loss']:.3f} | {seconds:.0f} | "
              f"{out['score_seconds'] / out['epochs']:.1f} |", flush=True)


if __name__ == "__main__":
    main()

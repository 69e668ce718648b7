"""Validation BLEU and chrF of every trained variant alone and of ensembles of them.

    python benchmarks/ensembles.py [--models models] [--beam 5] [--params params.yaml]

Run in a workspace where the pipeline has run (data/processed, data/interim/tokens.parquet,
models/VARIANT). Each variant alone, every pair, and all of them together decode the
validation set as the evaluate stage does (whole sources, evaluate's output limit), greedy;
then the best single variant and the best ensemble again with beam search (evaluate's beam
size and alpha). Prints a table; the ensemble's log-probabilities are averaged at each step
(pipeline/search.py's Ensemble).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data import load_splits, whole_validation  # noqa: E402
from pipeline.metrics import bleu, chrf  # noqa: E402
from pipeline.modeldir import load_model_dir  # noqa: E402
from pipeline.params import VARIANTS, EvaluateParams, load_params, section  # noqa: E402
from pipeline.search import Ensemble, OutputLimit, translate_split  # noqa: E402
from pipeline.vocab import ids_to_tokens  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="models")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ev: EvaluateParams = section(load_params(args.params), "evaluate", EvaluateParams)
    cpu = torch.device("cpu")
    names = [v for v in VARIANTS if (Path(args.models) / v / "model.pt").exists()]
    loaded = {v: load_model_dir(Path(args.models) / v, cpu) for v in names}
    vocab_fr, vocab_en = loaded[names[0]][2], loaded[names[0]][3]
    _, valid = load_splits("data/processed/ids.parquet")
    whole, refs, _ = whole_validation(
        valid, pd.read_parquet("data/interim/tokens.parquet").set_index("line"), vocab_fr)
    limit = OutputLimit(ev.max_len_a, ev.max_len_b, ev.max_len_cap)

    def score(group: tuple[str, ...], beam: int) -> tuple[float, float, float]:
        models = [loaded[v][0] for v in group]
        model = models[0] if len(models) == 1 else Ensemble(models).eval()
        t0 = time.perf_counter()
        hyps = translate_split(model, whole, ev.batch_size, limit, cpu, beam, ev.alpha)
        out = [" ".join(ids_to_tokens(h, vocab_en)) for h in hyps]
        return bleu(out, refs)[0], chrf(out, refs)[0], time.perf_counter() - t0

    groups = [(v,) for v in names] + list(itertools.combinations(names, 2))
    if len(names) > 2:
        groups.append(tuple(names))
    print(f"{len(valid)} validation sentences, models from {args.models}/")
    print("| models | search | BLEU | chrF | seconds |")
    print("|---|---|---:|---:|---:|")
    greedy = {}
    for g in groups:
        greedy[g] = score(g, 1)
        b, c, s = greedy[g]
        print(f"| {' + '.join(g)} | greedy | {b:.2f} | {c:.2f} | {s:.0f} |", flush=True)
    best_single = max((g for g in groups if len(g) == 1), key=lambda g: greedy[g][0])
    best_ensemble = max((g for g in groups if len(g) > 1), key=lambda g: greedy[g][0])
    for g in (best_single, best_ensemble):
        b, c, s = score(g, ev.beam_size)
        print(f"| {' + '.join(g)} | beam {ev.beam_size} | {b:.2f} | {c:.2f} | {s:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()

"""BLEU and chrF of every trained variant alone and of ensembles of them: chosen on the
validation set, reported on the test set.

    python benchmarks/ensembles.py [--models models] [--params params.yaml]

Run in a workspace where the pipeline has run (data/processed, data/interim, models/VARIANT).
Each variant alone, every pair, and all of them together decode the validation set as the
evaluate stage does (whole sources, evaluate's output limit), greedy; the best single variant
and the best ensemble are picked by that validation BLEU, and only those two are then scored
on the test set, greedy and with beam search (evaluate's beam size and alpha). BLEU is the
standard one, on the printed text. Then sacreBLEU's paired tests say whether the ensemble's
gain over the best single model on the test set is beyond chance
(pipeline/evaluation/significance.py).
The ensemble's log-probabilities are averaged at each step (pipeline/decoding/search.py's Ensemble).
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
from pipeline.data.batches import WholeSet, load_splits, whole_set  # noqa: E402
from pipeline.data.units import read_units  # noqa: E402
from pipeline.decoding.search import Ensemble, OutputLimit  # noqa: E402
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import outputs_of, scores, translate_tokens  # noqa: E402
from pipeline.evaluation.significance import format_table, paired_tests  # noqa: E402
from pipeline.models.modeldir import load_model_dir  # noqa: E402
from pipeline.params import EvaluateParams, load_params, section, variant_names  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="models")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ev: EvaluateParams = section(load_params(args.params), "evaluate", EvaluateParams)
    cpu = torch.device("cpu")
    names = [v for v in variant_names() if (Path(args.models) / v / "model.pt").exists()]
    loaded = {v: load_model_dir(Path(args.models) / v, cpu) for v in names}
    vocab_fr, vocab_en = loaded[names[0]][2], loaded[names[0]][3]
    units = read_units(Path(args.models) / names[0], loaded[names[0]][1], vocab_fr)
    _, valid, test = load_splits("data/processed/ids.parquet")
    if not len(test):
        raise PipelineError("ensembles: no test set (vocab.split lesson): a choice made on the "
                            "validation set has nothing honest to be reported on")
    tokens = pd.read_parquet("data/interim/tokens.parquet").set_index("line")
    questions = pd.read_parquet("data/interim/questions.parquet").set_index("line")
    sets = {name: whole_set(pairs, tokens, questions, vocab_fr, units)
            for name, pairs in (("valid", valid), ("test", test))}
    limit = OutputLimit.of(ev)

    texts: dict[tuple, list[str]] = {}

    def score(group: tuple[str, ...], whole: WholeSet, beam: int) -> tuple[float, float, float]:
        models = [loaded[v][0] for v in group]
        model = models[0] if len(models) == 1 else Ensemble(models).eval()
        t0 = time.perf_counter()
        hyps = outputs_of(translate_tokens(model, whole.split, vocab_en, ev.batch_size, limit,
                                           cpu, beam, ev.alpha)[0], units)
        texts[group, whole is sets["test"], beam] = hyps.text
        found, _ = scores(hyps, whole)
        return found["bleu"], found["chrf"], time.perf_counter() - t0

    groups = [(v,) for v in names] + list(itertools.combinations(names, 2))
    if len(names) > 2:
        groups.append(tuple(names))
    print(f"{len(valid)} validation and {len(test)} test sentences, models from {args.models}/")
    print("| models | set | search | BLEU | chrF | seconds |")
    print("|---|---|---|---:|---:|---:|")
    chosen = {}
    for g in groups:
        chosen[g] = score(g, sets["valid"], 1)
        b, c, s = chosen[g]
        print(f"| {' + '.join(g)} | valid | greedy | {b:.2f} | {c:.2f} | {s:.0f} |", flush=True)
    best_single = max((g for g in groups if len(g) == 1), key=lambda g: chosen[g][0])
    best_ensemble = max((g for g in groups if len(g) > 1), key=lambda g: chosen[g][0])
    for g in (best_single, best_ensemble):  # chosen on valid; reported on test
        for beam, search in ((1, "greedy"), (ev.beam_size, f"beam {ev.beam_size}")):
            b, c, s = score(g, sets["test"], beam)
            print(f"| {' + '.join(g)} | test | {search} | {b:.2f} | {c:.2f} | {s:.0f} |",
                  flush=True)
    for beam in (1, ev.beam_size):  # is the ensemble's gain on the test set real?
        systems = [(" + ".join(g), texts[g, True, beam]) for g in (best_single, best_ensemble)]
        print(f"\nThe ensemble against the best single model, test set, beam {beam}:")
        print(format_table(paired_tests(sets["test"].text_refs, systems), len(test)))


if __name__ == "__main__":
    main()

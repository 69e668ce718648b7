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
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data.batches import load_splits, whole_set  # noqa: E402
from pipeline.data.units import processed_folder, read_units  # noqa: E402
from pipeline.decoding.search import Ensemble, OutputLimit  # noqa: E402
from pipeline.errors import PipelineError, run_main  # noqa: E402
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
    # An ensemble averages log-probabilities over one vocabulary: only models of the same
    # units and vocabularies make one (words and pieces models are scored apart)
    families: dict[str, list[str]] = {}
    for v in names:
        _, config, vocab_fr, vocab_en = loaded[v]
        families.setdefault(json.dumps([config.get("units"), vocab_fr, vocab_en]), []).append(v)
    tokens = pd.read_parquet("data/interim/tokens.parquet").set_index("line")
    questions = pd.read_parquet("data/interim/questions.parquet").set_index("line")
    sets: dict[str, dict] = {}  # each variant: its valid and test WholeSets and units
    for family in families.values():
        config, vocab_fr = loaded[family[0]][1], loaded[family[0]][2]
        units = read_units(Path(args.models) / family[0], config, vocab_fr)
        _, valid, test = load_splits(str(processed_folder("data/processed", units.kind)
                                         / "ids.parquet"))
        if not len(test):
            raise PipelineError("ensembles: no test set (vocab.split lesson): a choice made on "
                                "the validation set has nothing honest to be reported on")
        found = {name: (whole_set(pairs, tokens, questions, vocab_fr, units), units)
                 for name, pairs in (("valid", valid), ("test", test))}
        sets.update({v: found for v in family})
    limit = OutputLimit.of(ev)

    texts: dict[tuple, list[str]] = {}

    def score(group: tuple[str, ...], name: str, beam: int) -> tuple[float, float, float]:
        models = [loaded[v][0] for v in group]
        model = models[0] if len(models) == 1 else Ensemble(models).eval()
        whole, units = sets[group[0]][name]
        t0 = time.perf_counter()
        hyps = outputs_of(translate_tokens(model, whole.split, loaded[group[0]][3],
                                           ev.batch_size, limit, cpu, beam, ev.alpha)[0], units)
        texts[group, name, beam] = hyps.text
        found, _ = scores(hyps, whole)
        return found["bleu"], found["chrf"], time.perf_counter() - t0

    groups = [(v,) for v in names]
    for family in families.values():
        groups += list(itertools.combinations(family, 2))
        if len(family) > 2:
            groups.append(tuple(family))
    if all(len(g) == 1 for g in groups):
        raise PipelineError(f"ensembles: no two models in {args.models}/ share units and "
                            "vocabularies (an ensemble averages over one vocabulary)")
    valid, test = sets[names[0]]["valid"][0], sets[names[0]]["test"][0]
    print(f"{len(valid.text_refs)} validation and {len(test.text_refs)} test sentences, "
          f"models from {args.models}/; ensembles of models with the same units and "
          "vocabularies")
    print("| models | set | search | BLEU | chrF | seconds |")
    print("|---|---|---|---:|---:|---:|")
    chosen = {}
    for g in groups:
        chosen[g] = score(g, "valid", 1)
        b, c, s = chosen[g]
        print(f"| {' + '.join(g)} | valid | greedy | {b:.2f} | {c:.2f} | {s:.0f} |", flush=True)
    best_single = max((g for g in groups if len(g) == 1), key=lambda g: chosen[g][0])
    best_ensemble = max((g for g in groups if len(g) > 1), key=lambda g: chosen[g][0])
    for g in (best_single, best_ensemble):  # chosen on valid; reported on test
        for beam, search in ((1, "greedy"), (ev.beam_size, f"beam {ev.beam_size}")):
            b, c, s = score(g, "test", beam)
            print(f"| {' + '.join(g)} | test | {search} | {b:.2f} | {c:.2f} | {s:.0f} |",
                  flush=True)
    for beam in (1, ev.beam_size):  # is the ensemble's gain on the test set real?
        systems = [(" + ".join(g), texts[g, "test", beam]) for g in (best_single, best_ensemble)]
        print(f"\nThe ensemble against the best single model, test set, beam {beam}:")
        print(format_table(paired_tests(test.text_refs, systems), len(test.text_refs)))


if __name__ == "__main__":
    run_main(main)

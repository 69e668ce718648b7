"""What stage evaluate@VARIANT computes and writes: losses, BLEU and chrF of greedy and beam
search on the validation and test sets, both the standard figures (the printed text against
the original English) and the lesson's (tokens); the searches checked against the model; the
translations that were scored, samples and attention heatmaps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pipeline.data.batches import Split, WholeSet, load_splits, pad, text_set, whole_set
from pipeline.data.outside import read_outside
from pipeline.data.units import processed_folder, read_units
from pipeline.decoding.search import OutputLimit, greedy
from pipeline.evaluation.metrics import (
    bleu_by_length,
    copy_rate,
    lesson_val_loss,
    outputs_of,
    scores,
    translate_tokens,
    validation_loss,
)
from pipeline.evaluation.plots import attention_heatmap
from pipeline.evaluation.search_check import search_check
from pipeline.files import read_json, write_json, write_lines, write_tsv
from pipeline.models.decoder import Model
from pipeline.models.modeldir import load_model_dir, weights_digest
from pipeline.params import EvaluateParams, section, variant_runtime
from pipeline.runtime import pick_device, set_threads


@dataclass(frozen=True)
class EvalPaths:
    """Where the stage reads and writes (stages/evaluate.py names them)."""

    ids: str              # the vocab stage's splits
    tokens: str           # the tokenized sentences, translated whole
    questions: str        # the original English, for standard BLEU
    models: Path          # models/VARIANT
    metrics: str          # metrics/{variant}.json
    reports: Path         # reports/VARIANT: translations, samples, heatmaps
    outside: str | None = None  # the outside set (pipeline/data/outside.py); None: not scored


def evaluate_variant(variant: str, params: dict, paths: EvalPaths) -> None:
    evaluate: EvaluateParams = section(params, "evaluate", EvaluateParams)
    runtime = variant_runtime(params, variant)
    set_threads(runtime.threads)
    device = pick_device(runtime.device, "runtime.device")
    if device.type == "cuda":  # the GPU this variant trained on (runtime.first_gpu)
        device = torch.device("cuda", runtime.first_gpu)
    model, config, vocab_fr, vocab_en = load_model_dir(paths.models / variant, device)
    units = read_units(paths.models / variant, config, vocab_fr)
    # a pieces model's sets are the same questions, encoded by the subwords stage
    _, valid, test = load_splits(str(processed_folder(Path(paths.ids).parent, units.kind)
                                     / "ids.parquet"))
    tokens = pd.read_parquet(paths.tokens).set_index("line")
    questions = pd.read_parquet(paths.questions).set_index("line")
    limit = OutputLimit.of(evaluate)
    out = paths.reports / variant
    (out / "translations").mkdir(parents=True, exist_ok=True)
    metrics: dict = {"val_loss_lesson": lesson_val_loss(model, valid, evaluate.batch_size, device),
                     "val_loss": validation_loss(model, valid, evaluate.batch_size, device)}
    # What these figures were made with, read from what ran: the weights (the gate compares
    # them with its baseline's), the units the model reads and writes, each search's settings
    metrics["weights_sha256"] = weights_digest(model)
    metrics["units"] = units.record()
    metrics["search"] = {}
    seconds, texts, sigs = {}, {}, {}
    # Translated and scored whole: the full tokenized sources, not the ids cut at the length
    # percentile for training (the losses use those). Valid chooses, test reports on questions
    # like the corpus's own, the outside set on questions written apart from it.
    sets = [("val", "valid", whole_set(valid, tokens, questions, vocab_fr, units))]
    if len(test):
        sets.append(("test", "test", whole_set(test, tokens, questions, vocab_fr, units)))
        metrics["test_loss"] = validation_loss(model, test, evaluate.batch_size, device)
    else:
        metrics["test_set"] = "none: vocab.split lesson has no test set"
    if paths.outside is not None:
        pairs = read_outside(paths.outside)
        sets.append(("outside", "outside", text_set(list(pairs["fr"]), list(pairs["en"]),
                                                    units, vocab_fr, vocab_en)))
    for prefix, name, whole in sets:
        write_lines(out / "translations" / f"{name}.ref.txt", whole.text_refs)
        for search, beam in (("greedy", 1), ("beam", evaluate.beam_size)):
            t0 = time.perf_counter()
            tokens_out, ran = translate_tokens(model, whole.split, vocab_en,
                                               evaluate.batch_size, limit, device, beam,
                                               evaluate.alpha)
            metrics["search"][f"{name}_{search}"] = ran
            hyps = outputs_of(tokens_out, units)
            seconds[f"{name}_{search}"] = time.perf_counter() - t0
            suffix = "" if search == "greedy" else "_beam"
            found, sigs = scores(hyps, whole, suffix)
            metrics.update({f"{prefix}_{k}": v for k, v in found.items()})
            if name != "test":  # names and numbers carried through (metrics.copy_words)
                rate, n = copy_rate(whole.text_sources, whole.text_refs, hyps.text)
                metrics[f"{prefix}_copy{suffix}"] = rate
                metrics[f"{prefix}_copy_sentences"] = n
            write_lines(out / "translations" / f"{name}.{search}.txt", hyps.text)
            texts[name, search] = hyps.text
        metrics[f"{prefix}_sentences"] = len(whole.split)
    scored_valid = sets[0][2]
    trained = read_json(paths.models / variant / "train.json")
    metrics.update(sigs, **other_metrics(model, valid, scored_valid, texts, seconds, evaluate,
                                         limit, device, trained))
    write_json(paths.metrics.format(variant=variant), metrics)
    print(f"evaluate@{variant}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    write_samples(scored_valid, texts, evaluate.samples, out / "samples.tsv")
    write_heatmaps(model, scored_valid.split, vocab_fr, vocab_en, limit, device,
                   min(evaluate.heatmaps, len(valid)), out / "attention")


def other_metrics(model: Model, valid: Split, scored_valid: WholeSet, texts: dict,
                  seconds: dict, evaluate: EvaluateParams, limit: OutputLimit, device: torch.device,
                  trained: dict) -> dict:
    """The metrics beside the scores: what training kept (train.json),
    decoding speed, the search check and BLEU by source length."""
    return {
        "epochs": trained["epochs"],
        "best_epoch": trained["best_epoch"],  # whose weights these are (train.keep)
        "stopped_epoch": trained["stopped_epoch"],  # where training ended
        "keep": trained["keep"],
        "stopped_early": trained["stopped_early"],
        "train_seconds": round(trained["seconds"], 1),
        "decode_sentences_per_second": {
            search: round(len(valid) / seconds[f"valid_{search}"], 1)
            for search in ("greedy", "beam")},
        # the searches' own figures against the model's teacher-forced forward (the gate)
        "search_check": search_check(model, scored_valid.split, evaluate.batch_size, limit, device,
                                     evaluate.beam_size, evaluate.alpha),
        "bleu_by_source_length": bleu_by_length(
            [len(t) for t in scored_valid.sources],
            {s: texts["valid", s] for s in ("greedy", "beam")}, scored_valid.text_refs),
    }


def write_samples(scored: WholeSet, texts: dict, n: int, path: Path) -> None:
    srcs = [" ".join(t) for t in scored.sources]
    samples = pd.DataFrame({"source": srcs, "reference": scored.text_refs,
                            "greedy": texts["valid", "greedy"],
                            "beam": texts["valid", "beam"]})
    write_tsv(path, samples.head(n))


def write_heatmaps(model: Model, whole: Split, vocab_fr: list[str], vocab_en: list[str],
                   limit: OutputLimit, device: torch.device, n: int, folder: Path) -> None:
    """Greedy's attention over the first n validation sources (a DVC plots folder; empty for
    variants without attention)."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    if not model.attends:
        return
    for k in range(n):
        src, src_len = pad([whole.src[k]])
        hyps, attn = greedy(model, src.to(device), src_len.to(device),
                            limit([len(whole.src[k])]))
        n_out = min(len(hyps[0]) + 1, attn.size(1))  # the output words and the _eos_
        words = [vocab_en[i] for i in hyps[0]] + ["_eos_"]
        attention_heatmap(attn[0, :n_out].float().cpu().numpy(),
                          [vocab_fr[i] for i in whole.src[k]], words[:n_out],
                          folder / f"{k}.png")

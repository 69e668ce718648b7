"""Stage evaluate@VARIANT: losses, greedy and beam BLEU, samples and attention heatmaps."""

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from pipeline.data import load_splits, pad, whole_validation
from pipeline.files import read_json, run_main, write_json
from pipeline.metrics import bleu, bleu_by_length, chrf, lesson_val_loss, translate_text
from pipeline.modeldir import load_model_dir
from pipeline.params import EvaluateParams, load_params, section, variant_configs
from pipeline.plots import attention_heatmap
from pipeline.search import OutputLimit, greedy
from pipeline.train import pick_device, set_threads, validation_loss

IDS = "data/processed/ids.parquet"
TOKENS = "data/interim/tokens.parquet"
MODELS = Path("models")
METRICS = "metrics/{variant}.json"
REPORTS = Path("reports")


def main() -> None:
    variant = sys.argv[1]
    params = load_params()
    ev: EvaluateParams = section(params, "evaluate", EvaluateParams)
    _, tcfg = variant_configs(params, variant)
    set_threads(tcfg.threads)
    device = pick_device(tcfg.device)
    if device.type == "cuda":  # the GPU this variant trained on (train.first_gpu)
        device = torch.device("cuda", tcfg.first_gpu)
    model, _, vocab_fr, vocab_en = load_model_dir(MODELS / variant, device)
    _, valid = load_splits(IDS)
    # Translated and scored whole: the sources and references are the full tokenized
    # sentences, not the ids cut at the length percentile for training (the losses use those).
    whole, refs, sources = whole_validation(
        valid, pd.read_parquet(TOKENS).set_index("line"), vocab_fr)
    limit = OutputLimit(ev.max_len_a, ev.max_len_b, ev.max_len_cap)
    outputs, seconds = {}, {}
    for name, beam in (("greedy", 1), ("beam", ev.beam_size)):
        t0 = time.perf_counter()
        outputs[name] = translate_text(model, whole, vocab_en, ev.batch_size, limit, device,
                                       beam, ev.alpha)
        seconds[name] = time.perf_counter() - t0
    score, signature = bleu(outputs["greedy"], refs)
    chrf_greedy, chrf_signature = chrf(outputs["greedy"], refs)
    trained = read_json(MODELS / variant / "train.json")
    metrics = {
        "val_loss_lesson": lesson_val_loss(model, valid, ev.batch_size, device),
        "val_loss": validation_loss(model, valid, ev.batch_size, device),
        "val_bleu": score,
        "val_bleu_beam": bleu(outputs["beam"], refs)[0],
        "bleu_signature": signature,
        "val_chrf": chrf_greedy,
        "val_chrf_beam": chrf(outputs["beam"], refs)[0],
        "chrf_signature": chrf_signature,
        "beam": {"size": ev.beam_size, "alpha": ev.alpha},
        "epochs": trained["epochs"],
        "best_epoch": trained["best_epoch"],  # whose weights these are (train.keep)
        "stopped_epoch": trained["stopped_epoch"],  # where training ended
        "keep": trained["keep"],
        "stopped_early": trained["stopped_early"],
        "train_seconds": round(trained["seconds"], 1),
        "decode_sentences_per_second": {k: round(len(valid) / v, 1) for k, v in seconds.items()},
        "bleu_by_source_length": bleu_by_length([len(t) for t in sources], outputs, refs),
    }
    write_json(METRICS.format(variant=variant), metrics)
    print(f"evaluate@{variant}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))

    out = REPORTS / variant
    out.mkdir(parents=True, exist_ok=True)
    srcs = [" ".join(t) for t in sources]
    samples = pd.DataFrame({"source": srcs, "reference": refs, "greedy": outputs["greedy"],
                            "beam": outputs["beam"]})
    samples.head(ev.samples).to_csv(out / "samples.tsv", sep="\t", index=False)
    heatmaps = out / "attention"  # a DVC plots folder; empty for variants without attention
    heatmaps.mkdir(exist_ok=True)
    for old in heatmaps.glob("*.png"):
        old.unlink()
    if model.attends:
        for k in range(min(ev.heatmaps, len(valid))):
            src, src_len = pad([whole.src[k]])
            hyps, attn = greedy(model, src.to(device), src_len.to(device),
                                limit([len(whole.src[k])]))
            n = min(len(hyps[0]) + 1, attn.size(1))  # the output words and the _eos_
            words = [vocab_en[i] for i in hyps[0]] + ["_eos_"]
            attention_heatmap(attn[0, :n].float().cpu().numpy(),
                              [vocab_fr[i] for i in whole.src[k]], words[:n],
                              heatmaps / f"{k}.png")


if __name__ == "__main__":
    run_main(main)

"""Stage evaluate@VARIANT: losses, BLEU, sample translations and attention heatmaps."""

import sys
from pathlib import Path

import pandas as pd
import torch

from pipeline.data import load_splits
from pipeline.decode import Translator, ids_to_tokens, max_len, translate_split
from pipeline.files import read_json, run_main, write_json
from pipeline.metrics import bleu, lesson_val_loss
from pipeline.params import EvaluateParams, load_params, section, variant_configs
from pipeline.plots import attention_heatmap
from pipeline.train import pick_device, set_threads, validation_loss
from pipeline.vocab import EOS

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
    tr = Translator(MODELS / variant, device=str(device))
    model, vocab_fr, vocab_en = tr.model, tr.vocab_fr, tr.vocab_en
    _, valid = load_splits(IDS)
    # References are the full tokenized sentences, not the ids cut at the length percentile.
    tokens = pd.read_parquet(TOKENS).set_index("line")
    refs = [" ".join(tokens.at[line, "en_tokens"]) for line in valid.lines]
    decode_len = ev.max_decode_len or max_len(valid.tgt)
    hyp_ids = translate_split(model, valid, ev.batch_size, decode_len, device)
    hyps = [" ".join(ids_to_tokens(h, vocab_en)) for h in hyp_ids]
    score, signature = bleu(hyps, refs)
    trained = read_json(MODELS / variant / "train.json")
    metrics = {
        "val_loss_lesson": lesson_val_loss(model, valid, ev.batch_size, device),
        "val_loss": validation_loss(model, valid, ev.batch_size, device),
        "val_bleu": score,
        "bleu_signature": signature,
        "epochs": trained["epochs"],
        "train_seconds": round(trained["seconds"], 1),
    }
    write_json(METRICS.format(variant=variant), metrics)
    print(f"evaluate@{variant}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))

    out = REPORTS / variant
    out.mkdir(parents=True, exist_ok=True)
    srcs = [" ".join(tokens.at[line, "fr_tokens"]) for line in valid.lines]
    samples = pd.DataFrame({"source": srcs, "reference": refs, "prediction": hyps})
    samples.head(ev.samples).to_csv(out / "samples.tsv", sep="\t", index=False)
    heatmaps = out / "attention"  # a DVC plots folder; empty for variants without attention
    heatmaps.mkdir(exist_ok=True)
    for old in heatmaps.glob("*.png"):
        old.unlink()
    if model.cfg.attention:
        for k in range(min(ev.heatmaps, len(valid))):
            src = valid.src[k]
            s = torch.from_numpy(src.copy())[None].to(device)
            with torch.no_grad():
                logits, w = model(s, torch.tensor([len(src)], device=device), max_len=decode_len,
                                  return_attention=True, stop_at_eos=True)
            hyp = logits.argmax(-1)[0].tolist()
            n = hyp.index(EOS) + 1 if EOS in hyp else len(hyp)
            attention_heatmap(w[0, :n].float().cpu().numpy(),
                              [vocab_fr[i] for i in src], [vocab_en[i] for i in hyp[:n]],
                              heatmaps / f"{k}.png")


if __name__ == "__main__":
    run_main(main)

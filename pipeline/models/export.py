"""Export a trained Transformer to CTranslate2, the inference engine OpenNMT, fairseq and
Marian models convert to: `fren-nmt export --model models/transformer --to DIR`.

The weights are mapped onto `ctranslate2.specs.TransformerSpec` (pre-norm, ReLU, the output
layer tied to the target embedding) by CTranslate2's own converter machinery (a `Converter`
whose `_load` builds the spec; it validates, quantizes and writes). What is this project's and
not CTranslate2's default is written into the spec: the position table
(pipeline/models/transformer.py's `positions`, laid out sin/cos interleaved where CTranslate2's
own table is not), LayerNorm's epsilon (PyTorch's 1e-5), the attention shown (the last layer's,
averaged over every head, as `step` returns it) and the special tokens' names. Beside the
model go the files the text path needs, so that the directory alone translates: the
tokenizer settings and lengths (fren_nmt.json) and the truecaser.

A GRU variant has no CTranslate2 spec (it has recurrent layers), and a Transformer whose
options the spec cannot express is refused the same way: one line saying why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from pipeline.data.units import SPM_FILE, TRUECASE_FILE
from pipeline.data.vocab import SPECIALS
from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.models.modeldir import load_model_dir
from pipeline.models.transformer import Transformer, positions

MARKER = "fren_nmt.json"  # what makes a CTranslate2 directory this project's
FORMAT = 1  # bump when the exported directory's layout changes
POSITIONS = 1024  # rows of the position table: the longest sentence the export reads
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16",
                 "int8_float16", "int8_bfloat16")
BOS_NAME, PAD_NAME, EOS_NAME, UNK_NAME = SPECIALS


def refusal(model: torch.nn.Module) -> str | None:
    """Why CTranslate2's TransformerSpec cannot express `model`, or None when it can."""
    if not isinstance(model, Transformer):
        return ("a GRU model has no CTranslate2 spec (its encoder and decoder are recurrent); "
                "only the transformer variant exports")
    # every option of the Transformer is expressible: layers per side, heads, the
    # feed-forward size, a tied or untied output (dropout does nothing at inference)
    return None


def transformer_spec(model: Transformer, vocab_fr: list[str], vocab_en: list[str]):  # noqa: ANN201
    """The model's weights on a ctranslate2.specs.TransformerSpec."""
    import ctranslate2

    common = ctranslate2.specs.common_spec
    cfg = model.cfg
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (cfg.enc_layers, cfg.dec_layers), cfg.heads, pre_norm=True,
        activation=common.Activation.RELU, alignment_layer=-1, alignment_heads=cfg.heads)
    table = positions(0, POSITIONS, model.dim, torch.device("cpu")).numpy()

    def array(t: torch.Tensor):  # noqa: ANN202
        return t.detach().float().cpu().numpy()

    def linear(target, *parts: tuple[torch.Tensor, torch.Tensor]) -> None:  # noqa: ANN001
        """A LinearSpec from (weight, bias) pairs, fused along the outputs in order."""
        target.weight = array(torch.cat([w for w, _ in parts]))
        target.bias = array(torch.cat([b for _, b in parts]))

    def of(layer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        return layer.weight, layer.bias

    def norm(target, layer: torch.nn.LayerNorm) -> None:  # noqa: ANN001
        target.gamma, target.beta = array(layer.weight), array(layer.bias)

    def attention(target, att, self_attention: bool) -> None:  # noqa: ANN001
        kv = of(att.kv)  # keys then values, as MultiHead.keys_values splits them
        if self_attention:  # one fused linear: queries, keys, values
            linear(target.linear[0], of(att.q), kv)
        else:  # queries from the decoder; keys and values fused, from the encoder
            linear(target.linear[0], of(att.q))
            linear(target.linear[1], kv)
        linear(target.linear[-1], of(att.o))

    def ffn(target, ff: torch.nn.Sequential, layer_norm: torch.nn.LayerNorm) -> None:  # noqa: ANN001
        norm(target.layer_norm, layer_norm)
        linear(target.linear_0, of(ff[0]))
        linear(target.linear_1, of(ff[3]))

    enc, dec = spec.encoder, spec.decoder
    enc.embeddings[0].weight = array(model.src_emb.weight)
    dec.embeddings.weight = array(model.tgt_emb.weight)
    for side in (enc, dec):  # embeddings x sqrt(D) plus this project's table
        side.scale_embeddings = True
        side.position_encodings.encodings = table
    norm(enc.layer_norm, model.enc_norm)
    norm(dec.layer_norm, model.dec_norm)
    for target, layer in zip(enc.layer, model.enc_layers):
        norm(target.self_attention.layer_norm, layer.norm1)
        attention(target.self_attention, layer.att, True)
        ffn(target.ffn, layer.ff, layer.norm2)
    for target, layer in zip(dec.layer, model.dec_layers):
        norm(target.self_attention.layer_norm, layer.norm1)
        attention(target.self_attention, layer.self_att, True)
        norm(target.attention.layer_norm, layer.norm2)
        attention(target.attention, layer.cross_att, False)
        ffn(target.ffn, layer.ff, layer.norm3)
    dec.projection.weight = array(model.out.weight)
    dec.projection.bias = array(model.out.bias)
    spec.config.layer_norm_epsilon = model.enc_norm.eps
    spec.config.unk_token, spec.config.bos_token = UNK_NAME, BOS_NAME
    spec.config.eos_token, spec.config.decoder_start_token = EOS_NAME, BOS_NAME
    spec.register_source_vocabulary(vocab_fr)
    spec.register_target_vocabulary(vocab_en)
    return spec


def export(model_dir: str | Path, out: str | Path, quantization: str = "float32") -> Path:
    """Write the CTranslate2 directory for the Transformer in `model_dir`: under a temporary
    name, renamed into place when complete."""
    import ctranslate2

    model_dir, out = Path(model_dir), Path(out)
    if quantization not in QUANTIZATIONS:
        raise PipelineError(f"--quantization {quantization!r}: not one of "
                            f"{', '.join(QUANTIZATIONS)}")
    model, config, vocab_fr, vocab_en = load_model_dir(model_dir, torch.device("cpu"))
    why = refusal(model)
    if why:
        raise PipelineError(f"{model_dir}: cannot export to CTranslate2: {why}")

    class FromModelDir(ctranslate2.converters.Converter):
        def _load(self):  # noqa: ANN202 - CTranslate2's converter interface
            return transformer_spec(model, vocab_fr, vocab_en)

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    FromModelDir().convert(str(tmp), quantization=None if quantization == "float32"
                           else quantization, force=True)
    (tmp / MARKER).write_text(json.dumps({
        "format": FORMAT, "exported_from": str(model_dir), "quantization": quantization,
        "tokenize": config["tokenize"], **({"units": config["units"]} if "units" in config
                                           else {}), "max_src_len": config["max_src_len"],
        "max_tgt_len": config["max_tgt_len"], "positions": POSITIONS}, indent=2))
    for name in (TRUECASE_FILE, *(SPM_FILE.format(lang=x) for x in ("fr", "en"))):
        if (model_dir / name).is_file():  # the text path: a truecaser, or the pieces' models
            shutil.copy(model_dir / name, tmp / name)
    (tmp / "vocab_fr.json").write_text(json.dumps(vocab_fr, ensure_ascii=False))
    (tmp / "vocab_en.json").write_text(json.dumps(vocab_en, ensure_ascii=False))
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def is_export(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def read_export(path: str | Path) -> dict:
    info = read_json(Path(path) / MARKER)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise PipelineError(f"{path}: a CTranslate2 export of format "
                            f"{info.get('format') if isinstance(info, dict) else None!r}; this "
                            f"version reads format {FORMAT}: export again with `fren-nmt export`")
    return info

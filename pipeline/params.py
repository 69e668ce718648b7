"""Typed views of params.yaml: one dataclass per section, checked when loaded.

Unknown keys and values of the wrong type are errors that name the key, so a typo in
`dvc exp run -S` fails at once instead of silently training the default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
MODEL_KINDS = ("gru", "transformer")
# The model keys each kind reads (pipeline/models/gru.py, pipeline/models/transformer.py; a
# test holds this to the code). A key that a variant's kind does not read is refused: it
# would change nothing.
KIND_KEYS = {
    "gru": frozenset({"emb_dropout", "enc_hidden", "enc_layers", "enc_dropout", "dec_layers",
                      "dec_dropout", "out_dropout", "tie_output", "bidirectional", "attention",
                      "att_hidden", "att_output", "mask_padding", "emb_std"}),
    "transformer": frozenset({"emb_dropout", "enc_layers", "dec_layers", "tie_output",
                              "emb_std", "heads", "ff_size", "dropout", "share_embeddings"}),
}
KEEP = ("val_bleu", "val_chrf", "val_loss", "last")  # what train.keep may name


# Each field's check, named in its metadata: the one place a param's allowed values are said.
# from_dict (the only way params.yaml becomes these classes) applies them to every value given.
def knob(default: Any = dataclasses.MISSING, ok: Callable[[Any], bool] | None = None,
         allowed: str = "", factory: Callable[[], Any] | None = None) -> Any:
    """A field whose values must pass `ok` ("must be `allowed`" says which)."""
    meta = {"check": (ok, f"out of range (must be {allowed})")} if ok else {}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def choice(default: str, *others: str) -> Any:
    """A field that is one of a few names, the default first."""
    names = (default, *others)
    return field(default=default,
                 metadata={"check": (lambda v: v in names, f"not one of {', '.join(names)}")})


def positive(default: float) -> Any:
    return knob(default, lambda v: v > 0, "> 0")


def at_least_0(default: float) -> Any:
    return knob(default, lambda v: v >= 0, ">= 0")


def fraction(default: float) -> Any:  # dropouts, label smoothing
    return knob(default, lambda v: 0 <= v < 1, "in [0, 1)")


def probability(default: float) -> Any:
    return knob(default, lambda v: 0 <= v <= 1, "in [0, 1]")


MAX_ALPHA = 10.0  # the largest length penalty params, `translate --alpha` and serve accept


def valid_alpha(value: float) -> bool:
    """GNMT's length penalty: 0 (none) to MAX_ALPHA."""
    return math.isfinite(value) and 0 <= value <= MAX_ALPHA


@dataclass
class DataParams:
    url: str = "https://www.statmt.org/wmt10/training-giga-fren.tar"
    sha256: str | None = None
    retries: int = positive(5)
    timeout: float = positive(60.0)


@dataclass
class FilterParams:
    en_regex: str = r"^(Wh[^?.!]+\?)"
    fr_regex: str = r"^([^?.!]+\?)"


@dataclass
class TokenizeParams:
    lowercase: bool = True
    mark_caps: bool = True
    max_en_tokens: int = positive(30)
    workers: int = at_least_0(0)
    min_pairs_per_worker: int = positive(2000)


@dataclass
class VocabParams:
    max_size: int = positive(40000)
    max_len_percentile: float = knob(99, lambda v: 0 < v <= 100, "in (0, 100]")
    split: str = choice("grouped", "lesson")
    # every choice is made on valid, so it cannot be empty; a test set may be (0: none)
    valid_fraction: float = knob(0.1, lambda v: 0 < v < 1, "in (0, 1)")
    test_fraction: float = knob(0.1, lambda v: 0 <= v < 1, "in [0, 1)")
    seed: int = 42

    def check(self, where: str) -> None:
        if self.split == "grouped" and self.valid_fraction + self.test_fraction >= 1:
            raise PipelineError(f"{where}.valid_fraction + {where}.test_fraction = "
                                f"{self.valid_fraction + self.test_fraction} leaves no training "
                                "pairs")


@dataclass
class PoolParams:
    size: int = at_least_0(200000)
    seed: int = 0
    max_words: int = positive(30)


@dataclass
class SubwordsParams:
    type: str = choice("unigram", "bpe")
    vocab_size: int = knob(8000, lambda v: v >= 16, ">= 16")
    joint: bool = True
    character_coverage: float = knob(1.0, lambda v: 0.9 <= v <= 1, "in [0.9, 1]")


@dataclass
class FastTextTrainParams:
    epochs: int = positive(20)
    min_count: int = positive(1)
    window: int = positive(5)
    minn: int = at_least_0(3)
    maxn: int = at_least_0(6)
    bucket: int = positive(20000)
    threads: int = positive(1)


@dataclass
class EmbeddingsParams:
    source: str = choice("train", "pretrained", "random")
    dim: int = positive(300)
    pretrained: dict[str, str] = knob(factory=lambda: {
        "fr": "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.fr.vec",
        "en": "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.en.vec",
    })
    train: FastTextTrainParams = knob(factory=FastTextTrainParams)


@dataclass
class ModelConfig:
    """Everything `build_model` needs besides the vocabulary sizes and embeddings."""

    kind: str = choice(*MODEL_KINDS)
    emb_dropout: float = fraction(0.15)
    enc_hidden: int = positive(256)
    enc_layers: int = positive(2)
    enc_dropout: float = fraction(0.25)
    dec_layers: int = positive(2)
    dec_dropout: float = fraction(0.1)
    out_dropout: float = fraction(0.35)
    tie_output: bool = True
    bidirectional: bool = False
    attention: bool = False
    att_hidden: int = positive(300)
    att_output: bool = True
    mask_padding: bool = True
    emb_std: float = positive(0.1)
    heads: int = positive(4)
    ff_size: int = positive(512)
    dropout: float = fraction(0.1)
    share_embeddings: bool = False  # one matrix for source and target (a joint vocabulary)


@dataclass
class TrainConfig:
    epochs: int = positive(12)
    lr: float = positive(3e-3)
    batch_size: int = positive(16)
    betas: tuple[float, float] = (0.8, 0.99)
    clr_div: float = knob(20, lambda v: v >= 1, ">= 1")
    clr_pct: float = knob(10, lambda v: v >= 1, ">= 1")
    clip: float = at_least_0(0.0)
    weight_decay: float = at_least_0(0.0)
    pad_in_loss: bool = False
    label_smoothing: float = fraction(0.1)
    teacher_forcing: bool = False
    pr_force_start: float = probability(1.0)
    pr_force_end: float = probability(1.0)
    pr_force_epochs: int = at_least_0(10)
    seed: int = 0
    precision: str = choice("fp32", "bf16")
    keep: str = choice(*KEEP)
    patience: int = at_least_0(0)  # 0 = off
    units: str = choice("words", "pieces")
    pool: int = at_least_0(0)  # pool pairs added to each epoch; 0 = the questions alone
    question_repeats: int = positive(1)  # the questions, this many times an epoch
    average: int = positive(1)  # the last N epochs' weights averaged (1 = off), kept if better
    sampling: float = fraction(0.0)  # subword regularization's alpha (0 = off; pieces only)
    name_swaps: float = probability(0.0)  # share of pairs with a name given a made-up one

    def check(self, where: str) -> None:
        if self.average > 1 and self.keep == "last":
            raise PipelineError(f"{where}.average: {self.average} needs {where}.keep to name a "
                                "metric (val_bleu, val_chrf or val_loss) that decides whether "
                                "the average or the kept epoch is better")
        if self.sampling and self.units != "pieces":
            raise PipelineError(f"{where}.sampling: {self.sampling} samples SentencePiece "
                                f"segmentations, which needs {where}.units: pieces")
        if self.name_swaps and self.units != "pieces":
            raise PipelineError(f"{where}.name_swaps: {self.name_swaps} re-encodes the pairs "
                                f"it changes, which needs {where}.units: pieces")
        if self.pool and self.units != "pieces":
            raise PipelineError(f"{where}.pool: {self.pool} pool pairs an epoch need "
                                f"{where}.units: pieces (the subwords stage encodes the pool)")


@dataclass
class RuntimeConfig:
    """Where and how a variant trains, not what it is trained to do: a resumed run may change
    them (the checkpoint's fingerprint leaves them out)."""

    device: str = choice("auto", "cpu", "cuda")
    threads: int = at_least_0(0)
    cuda_graphs: bool = True
    bucket: int = positive(4)
    tf32: bool = True
    processes: int = positive(1)
    first_gpu: int = at_least_0(0)
    timeout: float = positive(300.0)


@dataclass
class EvaluateParams:
    """Evaluation's settings, and the search defaults of `fren-nmt translate` and `serve`."""

    batch_size: int = positive(125)
    samples: int = at_least_0(20)
    heatmaps: int = at_least_0(4)
    max_len_a: float = at_least_0(1.5)
    max_len_b: int = at_least_0(5)
    max_len_cap: int = positive(200)
    beam_size: int = positive(5)
    alpha: float = knob(0.6, valid_alpha, f"from 0 to {MAX_ALPHA:g}")


# params.yaml's sections and their classes (variants lays model, train and runtime per variant)
SECTIONS = {"data": DataParams, "filter": FilterParams, "tokenize": TokenizeParams,
            "vocab": VocabParams, "pool": PoolParams, "subwords": SubwordsParams,
            "embeddings": EmbeddingsParams, "model": ModelConfig, "train": TrainConfig,
            "runtime": RuntimeConfig, "evaluate": EvaluateParams}


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting where YAML is loose (int->float)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise PipelineError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise PipelineError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is bool and isinstance(value, bool):
        return value
    if tp in (int, str) and isinstance(value, tp) and not isinstance(value, bool):
        return value
    raise PipelineError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls: type, data: dict | None, where: str) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types name `where.key`."""
    data = data or {}
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    checks = {f.name: f.metadata["check"] for f in dataclasses.fields(cls) if f.metadata}
    for k, v in kwargs.items():
        ok, what = checks.get(k, (None, ""))
        if ok is not None and not ok(v):
            raise PipelineError(f"{where}.{k}: {v!r} is {what}")
    obj = cls(**kwargs)
    if hasattr(obj, "check"):  # rules that tie several fields together
        obj.check(where)
    return obj


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"{path}: not valid YAML ({e})".replace("\n", " ")) from None
    if not isinstance(params, dict):
        raise PipelineError(f"{path}: expected a mapping at the top level")
    return params


def section(params: dict, name: str, cls: type) -> Any:
    return from_dict(cls, params.get(name), name)


def _variant(params: dict, variant: str) -> dict:
    """`variants.VARIANT`, checked: it exists, has only known sections, sets only the model
    keys its kind reads, and no shared key is made dead by the variants' own. (Each value is
    checked by from_dict once the sections are laid over each other.)"""
    variants = params.get("variants") or {}
    if variant not in variants:
        known = ", ".join(variants) or "none"
        raise PipelineError(f"variants.{variant}: no such variant (params.yaml has: {known})")
    over = variants[variant] or {}
    unknown = sorted(set(over) - {"model", "train", "runtime"})
    if unknown:
        raise PipelineError(f"variants.{variant}: unknown key(s) {', '.join(unknown)}")
    kind = _kind_of(params, variant)
    foreign = sorted(set(over.get("model") or {}) - KIND_KEYS.get(kind, set()) - {"kind"})
    if foreign and kind in KIND_KEYS:
        raise PipelineError(f"variants.{variant}.model.{foreign[0]}: a {kind} model does not "
                            f"read {foreign[0]} (it reads {', '.join(sorted(KIND_KEYS[kind]))})")
    _refuse_dead_keys(params, variants)
    return over


def variant_runtime(params: dict, variant: str) -> RuntimeConfig:
    """The shared `runtime` section with `variants.VARIANT.runtime` laid over it."""
    over = _variant(params, variant)
    return from_dict(RuntimeConfig, {**(params.get("runtime") or {}),
                                     **(over.get("runtime") or {})}, f"variants.{variant}.runtime")


def variant_configs(params: dict, variant: str) -> tuple[ModelConfig, TrainConfig]:
    """The shared `model`/`train` sections with `variants.VARIANT` laid over them."""
    over = _variant(params, variant)
    model = {**(params.get("model") or {}), **(over.get("model") or {})}
    train = {**(params.get("train") or {}), **(over.get("train") or {})}
    model_cfg = from_dict(ModelConfig, model, f"variants.{variant}.model")
    train_cfg = from_dict(TrainConfig, train, f"variants.{variant}.train")
    if model_cfg.kind == "transformer" and not (
            train_cfg.teacher_forcing and train_cfg.pr_force_start == 1
            and train_cfg.pr_force_end == 1):
        raise PipelineError(f"variants.{variant}.train: a transformer trains on the whole "
                            "target at once, teacher-forced: set teacher_forcing: true and "
                            "pr_force_start and pr_force_end to 1.0")
    return model_cfg, train_cfg


def _kind_of(params: dict, name: str) -> str:
    over = ((params.get("variants") or {}).get(name) or {}).get("model") or {}
    return over.get("kind", (params.get("model") or {}).get("kind", ModelConfig.kind))


def _refuse_dead_keys(params: dict, variants: dict) -> None:
    """A shared key that changes nothing is an error: one that every variant reading it sets
    for itself, or (model keys) one that no variant's kind reads."""
    for part in ("model", "train", "runtime"):
        for k in params.get(part) or {}:
            readers = [v for v in variants if part != "model" or k == "kind"
                       or k in KIND_KEYS.get(_kind_of(params, v), {k})]
            if not readers:
                raise PipelineError(f"{part}.{k}: no variant's kind reads it (variants: "
                                    f"{', '.join(f'{v} {_kind_of(params, v)}' for v in variants)})")
            if all(k in (((variants[v] or {}).get(part)) or {}) for v in readers):
                own = ", ".join(f"variants.{v}.{part}.{k}" for v in readers)
                who = "every variant" if len(readers) == len(variants) else "every variant " \
                    "that reads it"
                raise PipelineError(f"{part}.{k}: {who} sets its own ({own}), so {part}.{k} "
                                    f"changes nothing; set those (-S variants.NAME.{part}.{k}=...)")


def variant_names(params: dict | None = None, kind: str | None = None) -> list[str]:
    """The variants, in their order in params.yaml (the project's own when `params` is None),
    only those of one model kind if given: the one list of them, which dvc.yaml's foreach
    reads too."""
    params = load_params(PROJECT_PARAMS) if params is None else params
    names = list(params.get("variants") or {})
    return names if kind is None else [v for v in names if _kind_of(params, v) == kind]


def workspace_variants(folder: str | Path = ".") -> list[str]:
    """The variants of the params.yaml in `folder` (a workspace, the gate's scratch copy),
    else the project's own."""
    path = Path(folder) / "params.yaml"
    return variant_names(load_params(path) if path.exists() else None)

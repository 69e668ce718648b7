"""Typed views of params.yaml: one dataclass per section, checked when loaded.

Unknown keys and values of the wrong type are errors that name the key, so a typo in
`dvc exp run -S` fails at once instead of silently training the default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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
                              "emb_std", "heads", "ff_size", "dropout"}),
}
KEEP = ("val_bleu", "val_chrf", "val_loss", "last")  # what train.keep may name


@dataclass
class DataParams:
    url: str = "https://www.statmt.org/wmt10/training-giga-fren.tar"
    sha256: str | None = None
    retries: int = 5
    timeout: float = 60.0


@dataclass
class FilterParams:
    en_regex: str = r"^(Wh[^?.!]+\?)"
    fr_regex: str = r"^([^?.!]+\?)"


@dataclass
class TokenizeParams:
    lowercase: bool = True
    mark_caps: bool = True
    max_en_tokens: int = 30
    workers: int = 0
    min_pairs_per_worker: int = 2000


@dataclass
class VocabParams:
    max_size: int = 40000
    max_len_percentile: float = 99
    split: str = "grouped"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42

    def __post_init__(self) -> None:
        if self.split not in ("grouped", "lesson"):
            raise PipelineError(f"vocab.split: {self.split!r} is not grouped or lesson")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise PipelineError(f"vocab.{name}: {value} is not in [0, 1)")
        if self.split == "grouped" and self.valid_fraction + self.test_fraction >= 1:
            raise PipelineError(f"vocab.valid_fraction + vocab.test_fraction = "
                                f"{self.valid_fraction + self.test_fraction} leaves no training "
                                "pairs")


@dataclass
class FastTextTrainParams:
    epochs: int = 20
    min_count: int = 1
    window: int = 5
    minn: int = 3
    maxn: int = 6
    bucket: int = 20000
    threads: int = 1


@dataclass
class EmbeddingsParams:
    source: str = "train"
    dim: int = 300
    pretrained: dict[str, str] = field(
        default_factory=lambda: {
            "fr": "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.fr.vec",
            "en": "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.en.vec",
        }
    )
    train: FastTextTrainParams = field(default_factory=FastTextTrainParams)

    def __post_init__(self) -> None:
        if self.source not in ("pretrained", "train", "random"):
            raise PipelineError(
                f"embeddings.source: {self.source!r} is not one of pretrained, train, random"
            )


@dataclass
class ModelConfig:
    """Everything `build_model` needs besides the vocabulary sizes and embeddings."""

    kind: str = "gru"
    emb_dropout: float = 0.15
    enc_hidden: int = 256
    enc_layers: int = 2
    enc_dropout: float = 0.25
    dec_layers: int = 2
    dec_dropout: float = 0.1
    out_dropout: float = 0.35
    tie_output: bool = True
    bidirectional: bool = False
    attention: bool = False
    att_hidden: int = 300
    att_output: bool = True
    mask_padding: bool = True
    emb_std: float = 0.1
    heads: int = 4
    ff_size: int = 512
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise PipelineError(f"model.kind: {self.kind!r} is not one of "
                                f"{', '.join(MODEL_KINDS)}")


@dataclass
class TrainConfig:
    epochs: int = 12
    lr: float = 3e-3
    batch_size: int = 16
    betas: tuple[float, float] = (0.8, 0.99)
    clr_div: float = 20
    clr_pct: float = 10
    clip: float = 0.0
    weight_decay: float = 0.0
    pad_in_loss: bool = False
    label_smoothing: float = 0.1
    teacher_forcing: bool = False
    pr_force_start: float = 1.0
    pr_force_end: float = 1.0
    pr_force_epochs: int = 10
    seed: int = 0
    precision: str = "fp32"
    keep: str = "val_bleu"
    patience: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise PipelineError(f"train.epochs: {self.epochs} is not at least 1")
        if self.keep not in KEEP:
            raise PipelineError(f"train.keep: {self.keep!r} is not one of {', '.join(KEEP)}")
        if self.patience < 0:
            raise PipelineError(f"train.patience: {self.patience} is negative (0 = off)")
        if self.precision not in ("fp32", "bf16"):
            raise PipelineError(f"train.precision: {self.precision!r} is not fp32 or bf16")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise PipelineError(f"train.label_smoothing: {self.label_smoothing} is not in [0, 1)")


@dataclass
class RuntimeConfig:
    """Where and how a variant trains, not what it is trained to do: a resumed run may change
    them (the checkpoint's fingerprint leaves them out)."""

    device: str = "auto"
    threads: int = 0
    cuda_graphs: bool = True
    bucket: int = 4
    tf32: bool = True
    processes: int = 1
    first_gpu: int = 0
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise PipelineError(f"runtime.device: {self.device!r} is not auto, cpu or cuda")


@dataclass
class EvaluateParams:
    batch_size: int = 125
    samples: int = 20
    heatmaps: int = 4
    max_len_a: float = 1.5
    max_len_b: int = 5
    max_len_cap: int = 200
    beam_size: int = 5
    alpha: float = 0.6


# Allowed ranges, checked by from_dict with the key's full name: (test, what is allowed).
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_0 = (lambda v: v >= 0, ">= 0")
_DROPOUT = (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES: dict[type, dict[str, tuple]] = {
    DataParams: {"retries": _POSITIVE, "timeout": _POSITIVE},
    TokenizeParams: {"max_en_tokens": _POSITIVE, "workers": _AT_LEAST_0,
                     "min_pairs_per_worker": _POSITIVE},
    VocabParams: {"max_size": _POSITIVE,
                  "max_len_percentile": (lambda v: 0 < v <= 100, "in (0, 100]"),
                  "valid_fraction": (lambda v: 0 < v < 1, "in (0, 1)")},
    FastTextTrainParams: {"epochs": _POSITIVE, "min_count": _POSITIVE, "window": _POSITIVE,
                          "minn": _AT_LEAST_0, "maxn": _AT_LEAST_0, "bucket": _POSITIVE,
                          "threads": _POSITIVE},
    EmbeddingsParams: {"dim": _POSITIVE},
    ModelConfig: {"emb_dropout": _DROPOUT, "enc_dropout": _DROPOUT, "dec_dropout": _DROPOUT,
                  "out_dropout": _DROPOUT, "enc_hidden": _POSITIVE, "enc_layers": _POSITIVE,
                  "dec_layers": _POSITIVE, "att_hidden": _POSITIVE, "emb_std": _POSITIVE,
                  "heads": _POSITIVE, "ff_size": _POSITIVE, "dropout": _DROPOUT},
    TrainConfig: {"epochs": _POSITIVE, "lr": _POSITIVE, "batch_size": _POSITIVE,
                  "clr_div": (lambda v: v >= 1, ">= 1"), "clr_pct": (lambda v: v >= 1, ">= 1"),
                  "clip": _AT_LEAST_0, "weight_decay": _AT_LEAST_0,
                  "pr_force_start": (lambda v: 0 <= v <= 1, "in [0, 1]"),
                  "pr_force_end": (lambda v: 0 <= v <= 1, "in [0, 1]"),
                  "pr_force_epochs": _AT_LEAST_0},
    RuntimeConfig: {"threads": _AT_LEAST_0, "bucket": _POSITIVE, "processes": _POSITIVE,
                    "first_gpu": _AT_LEAST_0, "timeout": _POSITIVE},
    EvaluateParams: {"batch_size": _POSITIVE, "samples": _AT_LEAST_0, "heatmaps": _AT_LEAST_0,
                     "max_len_a": _AT_LEAST_0, "max_len_b": _AT_LEAST_0,
                     "max_len_cap": _POSITIVE, "beam_size": _POSITIVE,
                     "alpha": _AT_LEAST_0},
}


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
    for k, v in kwargs.items():
        ok, allowed = RANGES.get(cls, {}).get(k, (None, ""))
        if ok is not None and not ok(v):
            raise PipelineError(f"{where}.{k}: {v!r} is out of range (must be {allowed})")
    return cls(**kwargs)


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
    """`variants.VARIANT`, checked: it exists, has only known sections, and no shared key is
    made dead by the variants' own."""
    variants = params.get("variants") or {}
    if variant not in variants:
        known = ", ".join(variants) or "none"
        raise PipelineError(f"variants.{variant}: no such variant (params.yaml has: {known})")
    over = variants[variant] or {}
    unknown = sorted(set(over) - {"model", "train", "runtime"})
    if unknown:
        raise PipelineError(f"variants.{variant}: unknown key(s) {', '.join(unknown)}")
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
    kind = model.get("kind", ModelConfig.kind)
    foreign = sorted(set(over.get("model") or {}) - KIND_KEYS.get(kind, set()) - {"kind"})
    if foreign and kind in KIND_KEYS:
        raise PipelineError(f"variants.{variant}.model.{foreign[0]}: a {kind} model does not "
                            f"read {foreign[0]} (it reads {', '.join(sorted(KIND_KEYS[kind]))})")
    train = {**(params.get("train") or {}), **(over.get("train") or {})}
    mcfg = from_dict(ModelConfig, model, f"variants.{variant}.model")
    tcfg = from_dict(TrainConfig, train, f"variants.{variant}.train")
    if mcfg.kind == "transformer" and not (tcfg.teacher_forcing and tcfg.pr_force_start == 1
                                           and tcfg.pr_force_end == 1):
        raise PipelineError(f"variants.{variant}.train: a transformer trains on the whole "
                            "target at once, teacher-forced: set teacher_forcing: true and "
                            "pr_force_start and pr_force_end to 1.0")
    return mcfg, tcfg


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

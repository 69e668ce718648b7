"""The units a model reads and writes, and the text path around them.

Two kinds, one param apart (train.units):
- `Words`, the lesson's: spaCy tokens, lowercased with the t_up marker (pipeline/data/tokenize.py),
  and back to text with the truecaser and Moses' detokenizer (`to_text`);
- `Pieces`: SentencePiece pieces of the raw cased text (the subwords stage's models), and back
  to text with SentencePiece's own decoding: no lowercasing, so no truecaser or Moses step.

Both turn a French sentence into ids (`encode`, with _eos_), show its source units
(`source_tokens`, for heatmaps and samples), and print output tokens as text (`text`).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from pipeline.data.tokenize import CAPS, tokenize
from pipeline.data.truecase import truecase, truecaser
from pipeline.data.vocab import EOS, numericalize
from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.params import TokenizeParams, from_dict

UNITS = ("words", "pieces")
SPM_FILE = "spm_{lang}.model"  # a pieces model directory's SentencePiece models
TRUECASE_FILE = "truecase_en.json"  # a words model directory's truecaser, from data/processed


def processed_folder(processed: str | Path, kind: str) -> Path:
    """Where the questions' ids and vectors in these units are: data/processed (the vocab and
    embeddings stages') for words, its pieces/ folder (the subwords stage's) for pieces."""
    return Path(processed) / "pieces" if kind == "pieces" else Path(processed)


class Words:
    """spaCy tokens, as the tokenize stage made them; text by `to_text`."""

    kind = "words"

    def __init__(self, tokenize_params: TokenizeParams, vocab_fr: list[str],
                 casing=None) -> None:  # noqa: ANN001 - a MosesTruecaser
        self.params, self.casing = tokenize_params, casing
        self.stoi = {w: i for i, w in enumerate(vocab_fr)}

    def source_tokens(self, sentence: str) -> list[str]:
        return tokenize(sentence, "fr", self.params.lowercase, self.params.mark_caps)

    def target_tokens(self, sentence: str) -> list[str]:
        return tokenize(sentence, "en", self.params.lowercase, self.params.mark_caps)

    def encode(self, sentence: str) -> list[int]:
        return numericalize(self.source_tokens(sentence), self.stoi)

    def text(self, tokens: list[str]) -> str:
        return to_text(tokens, self.casing)

    def record(self) -> dict:
        return {"kind": "words", "lowercase": self.params.lowercase,
                "mark_caps": self.params.mark_caps}


class Pieces:
    """SentencePiece pieces of the raw text; text by SentencePiece's decoding."""

    kind = "pieces"

    def __init__(self, models: dict[str, bytes], record: dict | None = None) -> None:
        import sentencepiece as spm

        self.sp = {lang: spm.SentencePieceProcessor(model_proto=m) for lang, m in models.items()}
        self.settings = record or {}

    def source_tokens(self, sentence: str) -> list[str]:
        return self.sp["fr"].encode(sentence, out_type=str)

    def target_tokens(self, sentence: str) -> list[str]:
        return self.sp["en"].encode(sentence, out_type=str)

    def encode(self, sentence: str) -> list[int]:
        return self.sp["fr"].encode(sentence) + [EOS]

    def text(self, tokens: list[str]) -> str:
        return self.sp["en"].decode_pieces(tokens)

    def record(self) -> dict:
        return {"kind": "pieces", **self.settings}


def training_units(kind: str, folder: Path, tokenize_params: TokenizeParams,
                   vocab_fr: list[str], subwords: dict) -> tuple[Words | Pieces, dict[str, bytes]]:
    """The units of a model trained from `folder` (data/processed, or its pieces/ for
    pieces), and the files its model directory keeps for them beside the weights: the
    SentencePiece models (`subwords`: the settings they were made with), or the truecaser."""
    if kind == "pieces":
        files = {SPM_FILE.format(lang=x): (folder / SPM_FILE.format(lang=x)).read_bytes()
                 for x in ("fr", "en")}
        return Pieces({x: files[SPM_FILE.format(lang=x)] for x in ("fr", "en")}, subwords), files
    cased = read_json(folder / TRUECASE_FILE)
    return (Words(tokenize_params, vocab_fr, truecaser(cased)),
            {TRUECASE_FILE: json.dumps(cased, indent=2).encode()})


def read_units(path: Path, config: dict, vocab_fr: list[str]) -> Words | Pieces:
    """The units of the model directory (or CTranslate2 export) at `path`, from its config
    ("units", absent in a words directory) and the files beside it; older words directories
    have no truecaser."""
    units = config.get("units") or {"kind": "words"}
    if units.get("kind") == "pieces":
        models = {}
        for lang in ("fr", "en"):
            f = path / SPM_FILE.format(lang=lang)
            if not f.is_file():
                raise PipelineError(f"{f}: missing (a pieces model needs its SentencePiece "
                                    "models); retrain with `dvc repro train@VARIANT`")
            models[lang] = f.read_bytes()
        return Pieces(models, {k: v for k, v in units.items() if k != "kind"})
    if units.get("kind") != "words":
        raise PipelineError(f"{path}: units {units.get('kind')!r}, not one of "
                            f"{', '.join(UNITS)}")
    cased = path / TRUECASE_FILE
    return Words(from_dict(TokenizeParams, config["tokenize"], f"{path}: tokenize"), vocab_fr,
                 truecaser(read_json(cased)) if cased.is_file() else None)


@cache
def _detokenizer():  # noqa: ANN202 - sacremoses' MosesDetokenizer
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang="en")


_PUNCT = {"?", "!", ".", "..."}
# spaCy splits "can't", "gonna", "gotta", "wanna" in two; Moses' detokenizer does not join them
_JOIN = {"gon": "na", "wan": "na", "got": "ta"}


def to_text(tokens: list[str], casing=None) -> str:  # noqa: ANN001 - a MosesTruecaser
    """English text from the model's tokens: words in their usual case (the casing `casing`,
    pipeline/data/truecase.py: "tom" -> "Tom"), the t_up marker applied, spaCy's contraction splits
    joined, Moses' detokenizer for the spacing, repeated final punctuation collapsed, "i" and
    the first letter capitalized."""
    if casing is not None:  # words after t_up keep their form: they become capitals below
        tokens = [t if i and tokens[i - 1] == CAPS else c
                  for i, (t, c) in enumerate(zip(tokens, truecase(tokens, casing)))]
    words: list[str] = []
    caps = False
    for tok in tokens:
        if tok == CAPS:
            caps = True
            continue
        tok = (tok.upper() if caps else tok).replace("\u2019", "'")  # Moses wants ' for 's
        caps = False
        if words and (tok.lower() == "n't" or _JOIN.get(words[-1].lower()) == tok.lower()):
            words[-1] += tok
            continue
        words.append("I" if tok == "i" else tok)
    while len(words) > 1 and words[-1] in _PUNCT and words[-2] == words[-1]:
        words.pop()
    text = _detokenizer().detokenize(words) if words else ""
    first = re.search(r"[^\W\d_]", text)  # the first letter, after any quote or digit
    return text if first is None else (text[:first.start()] + text[first.start()].upper()
                                       + text[first.start() + 1:])



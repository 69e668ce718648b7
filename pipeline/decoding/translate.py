"""Translation of raw French sentences into English text a person reads.

`Translator` loads a model directory (pipeline/models/modeldir.py), tokenizes as training did,
searches (pipeline/decoding/search.py) and turns the tokens back into text (`to_text`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pipeline.data.batches import pad, to_device
from pipeline.data.tokenize import CAPS, tokenize
from pipeline.data.truecase import truecase, truecaser
from pipeline.data.vocab import EOS, UNK, ids_to_tokens
from pipeline.decoding.search import (
    Ensemble,
    Hypothesis,
    OutputLimit,
    beam_search,
    forced_attention,
    greedy,
)
from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.models.modeldir import TRUECASE_FILE, load_model_dir
from pipeline.params import EvaluateParams, TokenizeParams, from_dict
from pipeline.runtime import pick_device

# The search settings evaluate uses (params.yaml's evaluate section) are translate's defaults
DEFAULTS = EvaluateParams()
LIMIT = OutputLimit.of(DEFAULTS)


class Translator:
    """A trained model with its vocabularies and tokenizer settings; given several model
    directories, an ensemble of them (they must share vocabularies and tokenizer)."""

    def __init__(self, path: str | Path | list[str | Path], device: str = "cpu") -> None:
        paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
        self.device = pick_device(device, "--device")
        models = []
        for p in paths:
            model, config, vocab_fr, vocab_en = load_model_dir(p, self.device)
            if models:  # an ensemble averages log-probabilities over one vocabulary
                for what, mine, first in (("French vocabulary", vocab_fr, self.vocab_fr),
                                          ("English vocabulary", vocab_en, self.vocab_en),
                                          ("tokenizer", config["tokenize"],
                                           self.config["tokenize"])):
                    if mine != first:
                        raise PipelineError(f"{p}: its {what} differs from {paths[0]}'s; "
                                            "an ensemble's models must share it")
            else:
                self.config, self.vocab_fr, self.vocab_en = config, vocab_fr, vocab_en
            models.append(model)
        self.model = models[0] if len(models) == 1 else Ensemble(models).eval()
        self.attends = models[0].attends  # an ensemble shows its first model's attention
        self.read_text_path(paths[0])

    def read_text_path(self, path: Path) -> None:
        """What turns text into the model's tokens and back, from the directory at `path`
        (self.config and the vocabularies read already): the tokenizer settings, the source
        vocabulary's index, and the truecaser the train stage saved
        (pipeline/data/truecase.py; older models have none)."""
        self.stoi_fr = {w: i for i, w in enumerate(self.vocab_fr)}
        self.tokenize_params = from_dict(TokenizeParams, self.config["tokenize"],
                                         f"{path}: tokenize")
        cased = path / TRUECASE_FILE
        self.truecaser = truecaser(read_json(cased)) if cased.is_file() else None

    def encode(self, sentence: str) -> list[int]:
        """French ids with _eos_: the whole sentence (an RNN encoder reads any length)."""
        p = self.tokenize_params
        toks = tokenize(sentence, "fr", p.lowercase, p.mark_caps)
        return [self.stoi_fr.get(t, UNK) for t in toks] + [EOS]

    def search(self, sentences: list[str], batch_size: int = 64, beam_size: int = 1,
               alpha: float = DEFAULTS.alpha, n_best: int = 1, limit: OutputLimit = LIMIT,
               scored: bool = False) -> list[list[Hypothesis]]:
        """The n_best hypotheses of each sentence ([] for an empty line), in input order;
        each decodes up to `limit` of its own length. Greedy search (beam 1, one best) leaves
        the scores NaN unless `scored`: then a beam of one finds the same output, scored.

        Sentences are batched in order of length, so a sentence's translation does not depend
        on its neighbours (tests/integration/test_translate.py checks that).
        """
        out: list[list[Hypothesis]] = [[] for _ in sentences]
        todo = [(i, self.encode(s)) for i, s in enumerate(sentences) if s.strip()]
        todo.sort(key=lambda item: -len(item[1]))
        for k in range(0, len(todo), batch_size):
            chunk = todo[k:k + batch_size]
            src, src_len = pad([ids for _, ids in chunk])
            max_len = limit(src_len.tolist())
            src, src_len = to_device(src, self.device), to_device(src_len, self.device)
            if beam_size == 1 and n_best == 1 and not scored:
                hyps, _ = greedy(self.model, src, src_len, max_len)
                found = [[Hypothesis(h, float("nan"), float("nan"))] for h in hyps]
            else:
                found = beam_search(self.model, src, src_len, max_len, beam_size, alpha, n_best)
            for (i, _), hyps in zip(chunk, found):
                out[i] = hyps
        return out

    def attention(self, sentences: list[str], hyps: list[list[int]], batch_size: int = 64
                  ) -> list[tuple[list[str], list[str], list[list[float]]]] | None:
        """For each sentence and a hypothesis of it (ids): the source tokens and the output
        tokens, each with its _eos_, and the attention weights (a row per output token, over
        the source tokens); None for a model without attention."""
        if not self.attends:
            return None
        p = self.tokenize_params
        out: list = [None] * len(sentences)
        for k in range(0, len(sentences), batch_size):
            chunk = list(range(k, min(k + batch_size, len(sentences))))
            src, src_len = pad([self.encode(sentences[i]) for i in chunk])
            weights = forced_attention(self.model, to_device(src, self.device),
                                       to_device(src_len, self.device),
                                       [hyps[i] for i in chunk])
            for i, w in zip(chunk, weights):
                words = tokenize(sentences[i], "fr", p.lowercase, p.mark_caps) + [
                    self.vocab_fr[EOS]]
                out[i] = (words, ids_to_tokens(hyps[i], self.vocab_en) + [self.vocab_en[EOS]],
                          w.tolist())
        return out

    def translate(self, sentences: list[str], batch_size: int = 64, beam_size: int = 1,
                  alpha: float = DEFAULTS.alpha, tokens: bool = False,
                  limit: OutputLimit = LIMIT
                  ) -> list[str]:
        """One line per sentence: text a person reads, or the model's tokens (`tokens`)."""
        lines = []
        for hyps in self.search(sentences, batch_size, beam_size, alpha, 1, limit):
            words = ids_to_tokens(hyps[0].ids, self.vocab_en) if hyps else []
            lines.append(" ".join(words) if tokens else to_text(words, self.truecaser))
        return lines


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


ENGINES = ("auto", "pytorch", "ctranslate2")


def open_translator(path: str | Path | list[str | Path], device: str = "cpu",
                    engine: str = "auto") -> Translator:
    """What `translate` and `serve` decode with. A model directory (several: an ensemble)
    runs on PyTorch; a CTranslate2 export (`fren-nmt export`) on CTranslate2. `engine`
    ctranslate2 exports a model directory's Transformer at start, to a temporary folder."""
    import atexit
    import shutil
    import tempfile

    from pipeline.models.export import export, is_export

    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    if engine not in ENGINES:
        raise PipelineError(f"--engine {engine!r}: not one of {', '.join(ENGINES)}")
    exported = [p for p in paths if is_export(p)]
    if (exported or engine == "ctranslate2") and len(paths) > 1:
        raise PipelineError(f"{(exported or paths)[0]}: an ensemble runs on PyTorch; give "
                            "model directories (models/VARIANT), not CTranslate2 exports")
    if exported and engine == "pytorch":
        raise PipelineError(f"{paths[0]}: a CTranslate2 export runs on CTranslate2 "
                            "(--engine ctranslate2 or auto); for PyTorch give its model directory")
    if not exported and engine != "ctranslate2":
        return Translator(paths, device=device)
    from pipeline.decoding.ctranslate import CT2Translator

    if exported:
        return CT2Translator(paths[0], device=device)
    tmp = Path(tempfile.mkdtemp(prefix="fren-nmt-ct2-"))
    atexit.register(shutil.rmtree, tmp, True)
    return CT2Translator(export(paths[0], tmp / "model"), device=device)

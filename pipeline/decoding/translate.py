"""Translation of raw French sentences into English text a person reads.

`Translator` loads a model directory (pipeline/models/modeldir.py), turns text into its units
as training did, searches (pipeline/decoding/search.py) and turns the units back into text
(pipeline/data/units.py: words or SentencePiece pieces).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.batches import pad, to_device
from pipeline.data.units import read_units
from pipeline.data.vocab import EOS, ids_to_tokens
from pipeline.decoding.search import (
    Ensemble,
    Hypothesis,
    OutputLimit,
    beam_search,
    forced_attention,
    greedy,
)
from pipeline.errors import PipelineError
from pipeline.models.modeldir import load_model_dir
from pipeline.params import EvaluateParams
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
                for what, mine, first in (("units (words or pieces)", config.get("units"),
                                           self.config.get("units")),
                                          ("French vocabulary", vocab_fr, self.vocab_fr),
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
        """What turns text into the model's units and back, from the directory at `path`
        (self.config and the vocabularies read already): words with their tokenizer settings
        and truecaser, or pieces with their SentencePiece models (pipeline/data/units.py)."""
        self.units = read_units(path, self.config, self.vocab_fr)

    def encode(self, sentence: str) -> list[int]:
        """French ids with _eos_: the whole sentence (an RNN encoder reads any length)."""
        return self.units.encode(sentence)

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
        out: list = [None] * len(sentences)
        for k in range(0, len(sentences), batch_size):
            chunk = list(range(k, min(k + batch_size, len(sentences))))
            src, src_len = pad([self.encode(sentences[i]) for i in chunk])
            weights = forced_attention(self.model, to_device(src, self.device),
                                       to_device(src_len, self.device),
                                       [hyps[i] for i in chunk])
            for i, w in zip(chunk, weights):
                words = self.units.source_tokens(sentences[i]) + [self.vocab_fr[EOS]]
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
            lines.append(" ".join(words) if tokens else self.units.text(words))
        return lines


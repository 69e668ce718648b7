"""Case for the model's lowercased output, learned from the training corpus's own English.

The model reads and writes lowercased tokens (tokenize.lowercase), so "tom" and "christmas"
come out as they went in. A truecaser learned with sacremoses' MosesTruecaser (the Moses
recaser's train-truecaser.perl) on the original English of the training pairs, tokenized as
training tokenizes but with case kept, knows each word's most frequent form away from the
start of a sentence: "Tom", "Christmas", "Paris", but "what". pipeline/decoding/translate.py's
`to_text` puts each output word in that form and capitalizes the first letter.

The model is saved as JSON (lowercased word -> its best form), beside the model's
vocabularies in every model directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tqdm import tqdm

from pipeline.data.tokenize import tokenize


def train_truecaser(sentences: Iterable[str], total: int | None = None) -> dict[str, str]:
    """Each word's most frequent form (lowercased word -> form) in these English sentences,
    sentence-initial words not counted (their capital says nothing), as Moses does. Only
    words whose best form is not all lowercase are kept: the others need no entry."""
    from sacremoses import MosesTruecaser

    docs = [tokenize(s, "en", lowercase=False, mark_caps=False)
            for s in tqdm(sentences, total=total, desc="truecase: tokenize", disable=None,
                          mininterval=1.0, leave=False)]
    best = MosesTruecaser().train(docs)["best"]
    return {low: form for low, form in sorted(best.items()) if form != low}


def truecaser(best: dict[str, str]):  # noqa: ANN201 - sacremoses' MosesTruecaser
    """A MosesTruecaser holding `best` (what train_truecaser returned)."""
    from sacremoses import MosesTruecaser

    model = MosesTruecaser()
    model.model = {"best": best, "known": Counter()}
    return model


def truecase(tokens: list[str], casing) -> list[str]:  # noqa: ANN001
    """The tokens, each in its best form: Moses' truecase.perl, as sacremoses applies it
    (a word it does not know stays as it is)."""
    if not tokens:
        return tokens
    out = casing.truecase(" ".join(tokens))
    return out if len(out) == len(tokens) else tokens  # a token it would split: as it is

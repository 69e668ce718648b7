"""The pool (leak guard, seeded sample), SentencePiece pieces and the text path of either unit,
and how an epoch mixes the questions with the pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.corpus import EN_LINES, FR_LINES, make_tarball, make_zip

from pipeline.data.batches import Split, epoch_pairs, max_lengths
from pipeline.data.corpus import filter_pairs, line_pairs
from pipeline.data.pool import Guard, guard_key, overlap, sample_pool, unseen_share
from pipeline.data.subwords import encode_pairs, learned_from, train_models, vocabulary
from pipeline.data.units import Pieces
from pipeline.data.vocab import EOS, SPECIALS
from pipeline.errors import PipelineError
from pipeline.params import PoolParams, SubwordsParams, TrainConfig, from_dict

# Our own sentences: a corpus of plain statements about a few people and things, enough text
# for SentencePiece to learn a few hundred pieces.
PEOPLE = ["Paul", "Marie", "Luc", "Anne", "Hugo", "Léa", "Jean", "Zoé"]
THINGS = [("le pain", "the bread"), ("la pomme", "the apple"), ("le livre", "the book"),
          ("la voiture", "the car"), ("le café", "the coffee"), ("la lettre", "the letter")]
VERBS = [("mange", "eats"), ("voit", "sees"), ("aime", "likes"), ("prend", "takes")]


def statements() -> list[tuple[str, str]]:
    return [(f"{p} {v} {t}.", f"{p} {ve} {te}.") for p in PEOPLE for v, ve in VERBS
            for t, te in THINGS]


def test_the_guard_finds_equal_and_contained_sentences_as_whole_words() -> None:
    guard = Guard({"en": ["Why are you here?", "Who is she?"], "fr": ["Pourquoi es-tu là ?"]})
    assert guard_key("Why  are you\u00a0HERE ?") == " why are you here "
    assert guard.hit("en", "why are you here") == "equal"
    assert guard.hit("en", "Why are you here? I wonder.") == "contains"
    assert guard.hit("fr", "Je sais. Pourquoi es-tu là ?") == "contains"
    assert guard.hit("en", "Whyare you here") is None           # not the same words
    assert guard.hit("en", "Who is Sheila?") is None             # a word's start is no match
    assert guard.hit("fr", "Why are you here?") is None          # each language its own
    assert Guard({"en": []}).hit("en", "anything") is None


def test_the_pool_is_what_the_filter_rejected_guarded_and_a_seeded_nested_sample(
        tmp_path: Path) -> None:
    pairs = statements()
    en = EN_LINES + [e for _, e in pairs] + ["Paul eats the bread. Where is the station?"]
    fr = FR_LINES + [f for f, _ in pairs] + ["Paul mange le pain. Où est la gare ?"]
    tarball = make_tarball(tmp_path / "c.tar", en, fr)
    kept = filter_pairs(tarball, r"^(Wh[^?.!]+\?)", r"^([^?.!]+\?)").pairs
    questions = set(kept["line"])
    assert [n for n, _, _ in line_pairs(tarball)] == list(range(1, len(en) + 1))
    guard = Guard({"en": ["Where is the station?"], "fr": ["Où est la gare ?"]})
    every = sample_pool(line_pairs(tarball), questions, guard,
                        from_dict(PoolParams, {"size": 1000}, "pool"))
    c = every.counts
    assert c["rejected_by_filter"] == len(en) - len(questions)
    assert c["guard_contains"] == 1 and c["guard_equal"] == 0  # the last line holds a question
    assert c["eligible"] == c["guard_checked"] == len(en) - len(questions)  # a sample not full
    assert c["kept"] == c["eligible"] - 1
    assert not set(every.pairs["line"]) & questions
    assert overlap(every.pairs, guard) == 0
    small_result = sample_pool(line_pairs(tarball), questions, guard,
                               from_dict(PoolParams, {"size": 10}, "pool"))
    small, small_counts = small_result.pairs, small_result.counts
    assert list(small["line"]) == list(every.pairs["line"][:10])  # a smaller size: the first
    # once the sample is full, the guard looks only at pairs that would enter it: the same
    # sample as a guard that looks at every pair (the whole sample above, cut to 10)
    assert small_counts["guard_checked"] < c["eligible"] == small_counts["eligible"]
    # drops about half the pairs, some of them inside the sample
    wide = Guard({"en": ["the bread", "the book", "the coffee"]})
    full = sample_pool(line_pairs(tarball), questions, wide,
                       from_dict(PoolParams, {"size": 1000}, "pool"))
    assert 0 < full.counts["guard_contains"] < full.counts["eligible"] / 1.5
    for size in (3, 10, 20):
        part = sample_pool(line_pairs(tarball), questions, wide,
                           from_dict(PoolParams, {"size": size}, "pool")).pairs
        assert list(part["line"]) == list(full.pairs["line"][:size])
    other = sample_pool(line_pairs(tarball), questions, guard,
                        from_dict(PoolParams, {"size": 10, "seed": 1}, "pool")).pairs
    assert list(other["line"]) != list(small["line"])
    # the same sample from the zip layout of the same lines
    zipped = make_zip(tmp_path / "c.zip", en, fr)
    again = sample_pool(line_pairs(zipped), questions, guard,
                        from_dict(PoolParams, {"size": 10}, "pool")).pairs
    assert list(again["line"]) == list(small["line"])
    assert unseen_share(["Paul mange", "Paul court"], {"paul", "mange"}) == 0.5


def test_pieces_keep_the_lessons_special_ids_and_round_trip_the_text() -> None:
    pairs = statements()
    text = {"fr": [f for f, _ in pairs], "en": [e for _, e in pairs]}
    models = train_models(text, from_dict(SubwordsParams, {"vocab_size": 50}, "subwords"))
    assert models["fr"] == models["en"]  # joint
    assert vocabulary(models["en"])[:4] == SPECIALS
    units = Pieces(models)
    sentence = "Zoé aime la lettre."
    assert units.encode(sentence)[-1] == EOS
    assert units.text(units.target_tokens(sentence)) == sentence  # cased, no truecaser
    ids = encode_pairs(pd.DataFrame({"fr": ["Luc voit le café."], "en": ["Luc sees the coffee."],
                                     "line": [7]}), models)
    assert ids["en_ids"][0][-1] == EOS and ids["line"][0] == 7
    apart = train_models(text, from_dict(SubwordsParams, {"vocab_size": 36, "joint": False},
                                         "subwords"))
    assert apart["fr"] != apart["en"]


def test_the_record_counts_the_scored_questions_sentencepiece_learned_from() -> None:
    pairs = statements()
    questions = pd.DataFrame({"fr": [f for f, _ in pairs[:6]], "en": [e for _, e in pairs[:6]],
                              "split": ["train", "train", "valid", "valid", "test", "test"]})
    pool = pairs[6:]
    train = questions[questions["split"] == "train"]
    text = {lang: [*train[lang], *(p[i] for p in pool)] for i, lang in enumerate(("fr", "en"))}
    assert learned_from(text, questions) == {
        lang: {"sentences": 2 + len(pool), "valid_test_questions": 0} for lang in ("fr", "en")}
    text["en"].append(questions["en"][2])  # a valid question's English leaks in
    found = learned_from(text, questions)
    assert found["en"]["valid_test_questions"] == 1 and found["fr"]["valid_test_questions"] == 0


def test_a_vocabulary_the_text_cannot_fill_is_one_line_naming_the_param() -> None:
    text = {"fr": ["le pain", "la pomme"], "en": ["the bread", "the apple"]}
    with pytest.raises(PipelineError, match=r"subwords.vocab_size: 4000 .* at most \d+"):
        train_models(text, from_dict(SubwordsParams, {"vocab_size": 4000}, "subwords"))
    with pytest.raises(PipelineError, match=r"subwords.vocab_size: 16 is fewer .*at least \d+"):
        train_models(text, from_dict(SubwordsParams, {"vocab_size": 16}, "subwords"))


def test_an_epoch_is_the_questions_repeated_and_the_next_slice_of_the_pool() -> None:
    def split(lines: range) -> Split:
        return Split(pd.DataFrame({"fr_ids": [[i, EOS] for i in lines],
                                   "en_ids": [[i, EOS] for i in lines], "line": list(lines)}))
    train, pool = split(range(3)), split(range(100, 105))
    assert epoch_pairs(train, None, 1, 0, 0) is train
    first = epoch_pairs(train, pool, 2, 3, 0)
    assert list(first.lines) == [0, 1, 2, 0, 1, 2, 100, 101, 102]
    assert list(epoch_pairs(train, pool, 1, 3, 1).lines) == [0, 1, 2, 103, 104, 100]
    assert len(epoch_pairs(train, pool, 1, 50, 4)) == 3 + 5  # never more than the pool
    assert np.array_equal(first.src_lengths, np.full(9, 2))
    longer = Split(pd.DataFrame({"fr_ids": [[5, 6, 7, EOS]], "en_ids": [[5, EOS]], "line": [9]}))
    assert max_lengths(train, None) == (2, 2)
    assert max_lengths(train, longer) == (4, 2)  # the pool's longest shapes the CUDA steps too


def test_the_pool_needs_pieces() -> None:
    with pytest.raises(PipelineError, match=r"train.pool: 100 .* need train.units: pieces"):
        from_dict(TrainConfig, {"pool": 100}, "train")
    assert from_dict(TrainConfig, {"pool": 100, "units": "pieces"}, "train").pool == 100


def test_a_set_of_raw_text_in_pieces() -> None:
    """text_set (the outside set's way into evaluation) encodes as translate does."""
    from pipeline.data.batches import text_set

    text = {"fr": [f for f, _ in statements()], "en": [e for _, e in statements()]}
    models = train_models(text, from_dict(SubwordsParams, {"vocab_size": 50}, "subwords"))
    units, vocab = Pieces(models), vocabulary(models["fr"])
    fr, en = ["Zoé mange le livre."], ["Zoé eats the book."]
    got = text_set(fr, en, units, vocab, vocab)
    assert list(got.split.src[0]) == units.encode(fr[0])
    assert list(got.split.tgt[0]) == units.sp["en"].encode(en[0]) + [EOS]
    assert got.token_refs == [" ".join(units.target_tokens(en[0]))]
    assert got.text_refs == en and got.text_sources == fr


def cut_piece_pairs(pairs: list[tuple[str, str]], vocab_size: int) -> tuple[Pieces, Split]:
    """Joint pieces learned from `pairs`, and the pairs encoded in them, the first one's
    French cut at 3 pieces (no _eos_: cut at the length percentile)."""
    text = {"fr": [f for f, _ in pairs], "en": [e for _, e in pairs]}
    models = train_models(text, from_dict(SubwordsParams, {"vocab_size": vocab_size},
                                          "subwords"))
    ids = encode_pairs(pd.DataFrame({"fr": text["fr"], "en": text["en"],
                                     "line": range(len(pairs))}), models)
    ids.loc[0, "fr_ids"] = ids.loc[0, "fr_ids"][:3]
    return Pieces(models), Split(ids)


def test_sampled_pieces_spell_the_same_text_and_repeat_with_their_seed() -> None:
    """train.sampling: an epoch's pairs in new segmentations of the same text, drawn again
    the same for the same seed (a resumed run), never longer than the cap, and a side cut at
    the length percentile (no _eos_) kept as it is."""
    from pipeline.data.batches import sample_pieces

    units, split = cut_piece_pairs(statements(), 50)
    longest = split.max_lengths()
    a = sample_pieces(split, units, 0.1, 7, longest)
    b = sample_pieces(split, units, 0.1, 7, longest)
    c = sample_pieces(split, units, 0.1, 8, longest)
    assert all(np.array_equal(x, y) for x, y in zip(a.src + a.tgt, b.src + b.tgt))
    assert any(not np.array_equal(x, y) for x, y in zip(a.src + a.tgt, c.src + c.tgt))
    assert any(not np.array_equal(x, y) for x, y in zip(a.src, split.src))  # new pieces
    for side, lang in (("src", "fr"), ("tgt", "en")):
        for old, new in zip(getattr(split, side)[1:], getattr(a, side)[1:]):
            assert new[-1] == EOS and len(new) <= longest[side == "tgt"]
            assert units.sp[lang].decode(new[:-1].tolist()) == \
                units.sp[lang].decode(old[:-1].tolist())
    assert np.array_equal(a.src[0], split.src[0])  # the cut side is left alone
    assert list(a.lines) == list(split.lines)
    assert list(a.src_lengths) == [len(s) for s in a.src]
    tight = sample_pieces(split, units, 0.1, 7, (4, 4))  # no draw may pass the cap
    assert all(np.array_equal(x, y) or len(x) <= 4 for x, y in zip(tight.src, split.src))
    with pytest.raises(PipelineError, match=r"train.sampling: 0.1 samples SentencePiece "
                                            r"segmentations, which needs train.units: pieces"):
        from_dict(TrainConfig, {"sampling": 0.1}, "train")


def test_names_in_both_finds_what_a_translation_copies() -> None:
    from pipeline.data.batches import names_in_both

    assert names_in_both("Tom est-il allé à Boston en 1995 ?", "Did Tom go to Boston in 1995?") \
        == ["1995", "Boston", "Tom"]
    assert names_in_both("Où habite Marie-Claire ?", "Where does Marie-Claire live?") \
        == ["Marie-Claire"]
    assert names_in_both("Où est l'Élysée ?", "Where is the Élysée?") == ["Élysée"]
    assert names_in_both("Pourquoi es-tu là ?", "Why are you here?") == []  # capitals alone
    assert names_in_both("Où est Venise ?", "Where is Venice?") == []  # translated, not copied
    assert names_in_both("Est-ce Tomas ?", "Is it Tom?") == []  # whole tokens only


def test_swapped_names_are_made_up_alike_on_both_sides_and_repeat_with_their_seed() -> None:
    """train.name_swaps: in the share of the pairs holding a name on both sides, the name is
    replaced, the same on both sides, by one made of the vocabulary's pieces; the rest of
    the pair and the pairs with no name stay; the same seed draws the same (a resumed run);
    a pair cut at the length percentile, or that would outgrow the cap, is left alone."""
    from pipeline.data.batches import names_in_both, swap_names

    units, split = cut_piece_pairs(statements() + [("Où est le pain ?", "Where is the bread?")],
                                   60)
    longest = (max(split.max_lengths()) + 12,) * 2

    def decoded(s: Split, i: int) -> tuple[str, str]:
        return (units.sp["fr"].decode(s.src[i][:-1].tolist()),
                units.sp["en"].decode(s.tgt[i][:-1].tolist()))

    a = swap_names(split, units, 1.0, 3, longest)
    assert all(np.array_equal(x, y) for x, y in
               zip(a.src + a.tgt, swap_names(split, units, 1.0, 3, longest).src
                   + swap_names(split, units, 1.0, 3, longest).tgt))
    c = swap_names(split, units, 1.0, 4, longest)
    assert any(not np.array_equal(x, y) for x, y in zip(a.src, c.src))
    assert np.array_equal(a.src[0], split.src[0]) and np.array_equal(a.tgt[0], split.tgt[0])
    swapped = 0
    for i in range(1, len(split)):
        (fr, en), (old_fr, old_en) = decoded(a, i), decoded(split, i)
        person = old_fr.split()[0]
        if person not in old_en.split():  # the question: no name
            assert (fr, en) == (old_fr, old_en)
            continue
        new = fr.split()[0]
        if new == person:  # its made-up name had a capital the 60 pieces lack: kept
            assert (fr, en) == (old_fr, old_en)
            continue
        swapped += 1
        assert new != person and new[0].isupper() and new in en.split()
        assert fr.replace(new, person, 1) == old_fr and en.replace(new, person, 1) == old_en
        assert names_in_both(fr, en) == [new]
    assert swapped > len(split) // 4
    assert list(a.lines) == list(split.lines)
    assert list(a.src_lengths) == [len(s) for s in a.src]
    none = swap_names(split, units, 0.0, 3, longest)  # a share of 0 changes nothing
    assert all(np.array_equal(x, y) for x, y in zip(none.src, split.src))
    half = swap_names(split, units, 0.5, 3, longest)
    changed = sum(not np.array_equal(x, y) for x, y in zip(half.src, split.src))
    assert 0 < changed < len(split) - 2
    tight = swap_names(split, units, 1.0, 3, split.max_lengths())  # no pair may outgrow it
    assert all(len(x) <= split.max_lengths()[0] for x in tight.src)
    with pytest.raises(PipelineError, match=r"train.name_swaps: 0.5 re-encodes the pairs it "
                                            r"changes, which needs train.units: pieces"):
        from_dict(TrainConfig, {"name_swaps": 0.5}, "train")

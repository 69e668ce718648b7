"""`fren-nmt export`: a Transformer in CTranslate2, translated and served with the same text
in and out as PyTorch; what the export cannot express is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EN_VOCAB, FR_VOCAB
from test_translate import cli

from pipeline.decoding.ctranslate import CT2Translator, int8_saturates
from pipeline.decoding.engines import open_translator
from pipeline.decoding.translate import LIMIT, Translator
from pipeline.errors import PipelineError
from pipeline.models.build import build_model
from pipeline.models.export import export
from pipeline.models.modeldir import model_config, save_model_dir
from pipeline.params import ModelConfig, TokenizeParams

SENTENCES = ["où est la gare ?", "qui a fait ça ?", "pourquoi pas ?", "quand vient-il ?",
             "où est xyzzy ?", "la gare la gare où est qui ?", "Pourquoi ?", "qui est là ?",
             "quand la gare ?", "ça ?"]


@pytest.fixture(scope="module")
def transformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random Transformer whose outputs differ from sentence to sentence, with an
    untied output layer (tied is the default: both must export)."""
    torch.manual_seed(3)
    cfg = ModelConfig(kind="transformer", enc_layers=2, dec_layers=1, heads=2, ff_size=24,
                      dropout=0.1, emb_std=0.5, tie_output=False)
    model = build_model(cfg, len(FR_VOCAB), len(EN_VOCAB), 16)
    path = tmp_path_factory.mktemp("t") / "transformer"
    save_model_dir(path, model, model_config(cfg, TokenizeParams(), 16, 12, 8), FR_VOCAB,
                   EN_VOCAB, extra={"truecase_en.json": {"where": "Where"}})
    return path


@pytest.fixture(scope="module")
def exported(transformer_dir: Path) -> Path:
    return export(transformer_dir, transformer_dir.with_name("ct2"))


def test_greedy_attention_and_beam_scores_are_pytorch_s(transformer_dir: Path,
                                                        exported: Path) -> None:
    torch.set_num_threads(1)
    pt, ct = Translator(transformer_dir), CT2Translator(exported, threads=1)
    greedy = [h[0].ids for h in pt.search(SENTENCES)]
    assert len({tuple(g) for g in greedy}) > 2  # the model says different things
    assert [h[0].ids for h in ct.search(SENTENCES, batch_size=3)] == greedy
    assert ct.translate(SENTENCES) == pt.translate(SENTENCES)
    # greedy with scores (what the server asks for): rows of any limits share a call, and a
    # row cut at its own limit is scored again, as PyTorch scores it
    limits = LIMIT([len(ct.source_tokens(s)) for s in SENTENCES])
    assert len(set(limits)) > 3
    cut_rows = 0
    for ours, theirs, own in zip(pt.search(SENTENCES, scored=True),
                                 ct.search(SENTENCES, batch_size=4, scored=True), limits):
        assert ours[0].ids == theirs[0].ids
        assert theirs[0].log_prob == pytest.approx(ours[0].log_prob, abs=1e-4)
        cut_rows += len(ours[0].ids) == own  # this random model rarely ends before its limit
    assert cut_rows >= 2
    for (w1, o1, a1), (w2, o2, a2) in zip(pt.attention(SENTENCES, greedy),
                                          ct.attention(SENTENCES, greedy)):
        assert (w1, o1) == (w2, o2)
        assert np.allclose(np.array(a1), np.array(a2), atol=1e-5)
    # a beam's hypotheses carry the model's own log-probabilities, over GNMT's penalty
    mine = pt.search(SENTENCES, beam_size=3, alpha=0.6, n_best=3)
    compared = 0
    for ours, theirs in zip(mine, ct.search(SENTENCES, beam_size=3, alpha=0.6, n_best=3)):
        assert ours[0].ids == theirs[0].ids  # the best: here the same one
        for h in theirs:
            for o in [o for o in ours if o.ids == h.ids]:
                compared += 1
                assert h.log_prob == pytest.approx(o.log_prob, abs=1e-4)
                assert h.score == pytest.approx(o.score, abs=1e-4)
        assert [h.score for h in theirs] == sorted((h.score for h in theirs), reverse=True)
    assert compared >= len(SENTENCES)


def test_the_command_line_takes_an_export_or_exports_at_start(transformer_dir: Path,
                                                               exported: Path) -> None:
    text = "\n".join(SENTENCES) + "\n"
    want = cli("translate", "--model", str(transformer_dir), stdin=text)
    assert want.returncode == 0, want.stderr
    for args in (["--model", str(exported)],
                 ["--model", str(transformer_dir), "--engine", "ctranslate2"]):
        got = cli("translate", *args, stdin=text)
        assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
    nbest = cli("translate", "--model", str(exported), "--beam", "3", "--nbest", "2",
                stdin="où est la gare ?\n")
    assert nbest.returncode == 0 and len(nbest.stdout.splitlines()) == 2


def test_what_cannot_run_on_ctranslate2_is_one_line(model_dir: Path, transformer_dir: Path,
                                                   exported: Path, tmp_path: Path) -> None:
    r = cli("export", "--model", str(model_dir), "--to", str(tmp_path / "gru"))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot export to CTranslate2: a GRU model has no CTranslate2 spec" in r.stderr
    assert not (tmp_path / "gru").exists() and not list(tmp_path.glob(".gru*"))
    r = cli("translate", "--model", str(exported), "--model", str(transformer_dir),
            stdin="qui ?\n")
    assert r.returncode == 1 and "an ensemble runs on PyTorch" in r.stderr
    r = cli("translate", "--model", str(exported), "--engine", "pytorch", stdin="qui ?\n")
    assert r.returncode == 1 and "a CTranslate2 export runs on CTranslate2" in r.stderr
    with pytest.raises(PipelineError, match="reads at most 1024"):
        CT2Translator(exported, threads=1).search(["qui " * 1100])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "fren_nmt.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(PipelineError, match="export again with `fren-nmt export`"):
        open_translator(broken)


def test_a_quantized_export_translates_and_says_what_it_is(
        transformer_dir: Path, exported: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = cli("export", "--model", str(transformer_dir), "--to", str(tmp_path / "int8"),
            "--quantization", "int8")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "int8" / "fren_nmt.json").read_text())["quantization"] == \
        "int8"
    # where int8 saturates (no VNNI) the command says so once, and translates all the same
    import pipeline.decoding.ctranslate as ct

    for saturates in (False, True):
        monkeypatch.setattr(ct, "int8_saturates", lambda s=saturates: s)
        out = cli("translate", "--model", str(tmp_path / "int8"), stdin="où est la gare ?\n")
        assert out.returncode == 0 and out.stdout.strip()
        assert out.stderr.count("int8 on this CPU (no VNNI)") == saturates, out.stderr
    monkeypatch.setattr(ct, "int8_saturates", lambda: True)  # float32 has no such kernel
    assert "VNNI" not in cli("translate", "--model", str(exported), stdin="qui ?\n").stderr


def test_int8_saturates_where_onednn_has_no_vnni() -> None:
    """CTranslate2 multiplies int8 with MKL on Intel CPUs (or where CT2_USE_MKL says), with
    oneDNN elsewhere; oneDNN saturates without VNNI, or where ONEDNN_MAX_CPU_ISA leaves it out."""
    amd = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_1 avx2 {}\n"
    intel = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse4_1 avx2\n"
    assert int8_saturates(amd.format(""), {})  # an AVX2-only EPYC (Zen 2, Zen 3)
    assert not int8_saturates(amd.format("avx512f avx512_vnni"), {})  # Zen 4
    assert not int8_saturates(amd.format("avx_vnni"), {})
    assert int8_saturates(amd.format("avx512_vnni"), {"ONEDNN_MAX_CPU_ISA": "avx2"})
    assert not int8_saturates(amd.format("avx512_vnni"), {"ONEDNN_MAX_CPU_ISA": "ALL"})
    assert not int8_saturates(amd.format(""), {"CT2_USE_MKL": "1"})
    assert not int8_saturates(intel, {})
    assert int8_saturates(intel, {"CT2_USE_MKL": "0"})


def test_serve_answers_from_an_export_as_from_its_model(transformer_dir: Path,
                                                        exported: Path) -> None:
    from fastapi.testclient import TestClient

    from pipeline.serve import create_app

    body = {"sentences": SENTENCES[:4], "beam": 2, "nbest": 2, "attention": True}
    answers = []
    for path in (transformer_dir, exported):
        with TestClient(create_app(path)) as client:
            r = client.post("/translate", json=body)
            assert r.status_code == 200, r.text
            answers.append(r.json()["translations"])
            engine = client.get("/models").json()["models"][0]["engine"]
            assert engine == ("ctranslate2" if path == exported else "pytorch")
    pt, ct = answers
    assert [a["hypotheses"][0]["text"] for a in pt] == [a["hypotheses"][0]["text"] for a in ct]
    assert [a["attention"]["output"] for a in pt] == [a["attention"]["output"] for a in ct]


@pytest.mark.parametrize("share", [False, True])
def test_a_pieces_transformer_exports_with_its_sentencepiece_models(tmp_path: Path,
                                                                    share: bool) -> None:
    """A model of pieces: the export carries its SentencePiece models and units record, and
    CTranslate2 prints the same text as PyTorch (pieces decoded, a character never seen
    mapped to _unk on both engines), with one matrix for both languages and the output
    (model.share_embeddings) as with three."""
    from pipeline.data.subwords import train_models, vocabulary
    from pipeline.params import SubwordsParams, from_dict

    text = [f"{who} {verb} {what} ?" for who in ("Où", "Qui", "Quand", "Pourquoi")
            for verb in ("est", "vient", "part", "mange") for what in ("la gare", "le pain",
                                                                     "ton frère", "il")]
    models = train_models({"fr": text, "en": [t.lower() for t in text]},
                          from_dict(SubwordsParams, {"vocab_size": 36}, "subwords"))
    vocab = vocabulary(models["fr"])
    torch.manual_seed(5)
    cfg = ModelConfig(kind="transformer", enc_layers=1, dec_layers=1, heads=2, ff_size=24,
                      dropout=0.1, emb_std=0.5, share_embeddings=share)
    model = build_model(cfg, len(vocab), len(vocab), 16)
    assert (model.tgt_emb is model.src_emb) == share
    config = model_config(cfg, TokenizeParams(), 16, 12, 8)
    config["units"] = {"kind": "pieces", "type": "unigram", "vocab_size": 36, "joint": True,
                       "character_coverage": 1.0}
    path = tmp_path / "pieces"
    save_model_dir(path, model, config, vocab, vocab, extra={"train.json": {}},
                   files={f"spm_{lang}.model": models[lang] for lang in ("fr", "en")})
    out = export(path, tmp_path / "ct2")
    assert (out / "spm_fr.model").read_bytes() == models["fr"]
    sentences = ["Où est la gare ?", "Qui mange le pain ?", "Où est ☃ ?", ""]
    torch.set_num_threads(1)
    pt, ct = Translator(path), CT2Translator(out, threads=1)
    assert ct.units.kind == pt.units.kind == "pieces"
    assert ct.translate(sentences) == pt.translate(sentences)
    assert "\u2581" not in "".join(pt.translate(sentences))
    # the heatmap's rows and columns are pieces, the same on both engines
    hyps = [h[0].ids for h in pt.search(sentences[:2])]
    for (w1, o1, a1), (w2, o2, a2) in zip(pt.attention(sentences[:2], hyps),
                                          ct.attention(sentences[:2], hyps)):
        assert w1 == w2 and w1[0].startswith("\u2581") and w1[-1] == "_eos_"
        assert o1 == o2 and len(a1[0]) == len(w1)
        assert np.allclose(np.array(a1), np.array(a2), atol=1e-5)


def test_a_beam_batches_rows_of_one_limit_and_greedy_any() -> None:
    """CT2Translator's calls: greedy batch_size rows at a time; a beam, rows of one output
    limit at a time (so each row decodes to its own limit), as few calls as that allows."""
    from pipeline.decoding.ctranslate import batches, cut

    limits = [9, 9, 9, 8, 8, 5]  # the rows sorted longest first, as search sorts them
    assert batches(limits, 4, greedy=True) == [[0, 1, 2, 3], [4, 5]]
    assert batches(limits, 4, greedy=False) == [[0, 1, 2], [3, 4], [5]]
    assert batches(limits, 2, greedy=False) == [[0, 1], [2], [3, 4], [5]]
    assert batches([], 4, greedy=False) == []
    # decoded to 9, a row of limit 5: a longer hypothesis is cut there, unfinished
    assert cut([["a", "b"], list("abcdefgh")], 5, 9) == [(["a", "b"], True),
                                                         (list("abcde"), False)]
    assert cut([list("abcdefghi")], 9, 9) == [(list("abcdefghi"), False)]  # hit the limit

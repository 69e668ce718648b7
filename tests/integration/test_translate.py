"""fren-nmt translate: readable text, the same lines whichever way the input comes, and a
one-line error (never a traceback) for every bad model file, option or input."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from conftest import EN_VOCAB as EN

from pipeline.cli import main
from pipeline.data.truecase import train_truecaser, truecaser
from pipeline.data.units import to_text
from pipeline.data.vocab import SPECIALS
from pipeline.decoding.search import OutputLimit
from pipeline.decoding.translate import Translator

SENTENCES = ["Où est la gare ?", "", "Qui a fait ça ?", "Pourquoi pas ?",
             "Quand vient-il ?", "Où est la gare ?"]


@pytest.mark.parametrize("tokens,text", [
    (["where", "'s", "the", "station", "?", "?"], "Where's the station?"),
    (["i", "do", "n't", "know", "why", "?"], "I don't know why?"),
    (["why", "ca", "n't", "i", "come", "?"], "Why can't I come?"),
    (["what", "are", "you", "gon", "na", "do", "?"], "What are you gonna do?"),
    (["who", "lives", "in", "the", "t_up", "usa", "?"], "Who lives in the USA?"),
    (["t_up", "nasa", "?"], "NASA?"),
    (["what", "'re", "you", "doing", "!", "!", "!"], "What're you doing!"),
    (["who", "said", ",", "\"", "go", "home", "\"", "?"], 'Who said, "go home"?'),
    (["what", "(", "exactly", ")", "is", "it", "?"], "What (exactly) is it?"),
    (["\"", "why", "\"", "?"], '"Why"?'),
    (["what", "’s", "that", "?"], "What's that?"),
    (["it", "costs", "$", "5", "?"], "It costs $5?"),
    (["which", "is", "it", ":", "a", "or", "b", "?"], "Which is it: a or b?"),
    (["?"], "?"),
    ([], ""),
])
def test_tokens_become_text(tokens: list[str], text: str) -> None:
    assert to_text(tokens) == text


def command(*args: str, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    """The installed command, in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    r = subprocess.run(["fren-nmt", *args], input=data, capture_output=True, env=env)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(),
                                       r.stderr.decode())


def cli(*args: str, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    """The same command in this process (fast): its exit code, stdout and stderr."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    code = 0
    with mock.patch.object(sys, "stdin", fake_stdin), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_file_stdin_and_one_at_a_time_give_the_same_lines(model_dir: Path,
                                                          tmp_path: Path) -> None:
    text = "\n".join(SENTENCES) + "\n"
    source = tmp_path / "in.fr"
    source.write_text(text, encoding="utf-8")
    for extra in ([], ["--beam", "3"], ["--tokens"]):
        # a real pipe into the installed command once; the same code in this process after
        run = command if not extra else cli
        piped = run("translate", "--model", str(model_dir), *extra, stdin=text)
        assert piped.returncode == 0, piped.stderr
        from_file = cli("translate", "--model", str(model_dir), "--input", str(source), *extra)
        assert from_file.stdout == piped.stdout
        lines = piped.stdout.split("\n")
        assert len(lines) == len(SENTENCES) + 1 and lines[-1] == ""
        assert lines[1] == "" and lines[0] == lines[5]
        assert "--beam" in extra or lines[0]  # this random model's beam prefers to stop
    tr = Translator(model_dir)
    together = tr.translate(SENTENCES, batch_size=4, beam_size=3, alpha=0.6)
    alone = [tr.translate([s], beam_size=3, alpha=0.6)[0] for s in SENTENCES]
    assert together == alone
    assert together == cli("translate", "--model", str(model_dir), "--beam", "3",
                           stdin=text).stdout.splitlines()


def test_nbest_prints_k_scored_hypotheses_per_line(model_dir: Path) -> None:
    r = cli("translate", "--model", str(model_dir), "--beam", "4", "--nbest", "3",
            stdin="Où est la gare ?\nPourquoi pas ?\n")
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == ["1"] * 3 + ["2"] * 3
    for n in ("1", "2"):
        scores = [float(row[1]) for row in rows if row[0] == n]
        assert scores == sorted(scores, reverse=True)
    best = cli("translate", "--model", str(model_dir), "--beam", "4",
               stdin="Où est la gare ?\nPourquoi pas ?\n").stdout.splitlines()
    assert [rows[0][2], rows[3][2]] == best


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "weights_only" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04trunc", random.Random(0).randbytes(2048)],
                         ids=["empty", "truncated-zip", "noise"])
def test_a_damaged_model_file_is_one_line(model_dir: Path, tmp_path: Path,
                                          content: bytes) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    good = (model_dir / "model.pt").read_bytes()
    (broken / "model.pt").write_bytes(content or b"")
    one_line_error(cli("translate", "--model", str(broken), stdin="Qui ?\n"), "model.pt")
    (broken / "model.pt").write_bytes(good[: len(good) // 2])  # truncated
    one_line_error(cli("translate", "--model", str(broken), stdin="Qui ?\n"), "model.pt")


def test_bad_options_and_input_are_one_line(model_dir: Path) -> None:
    m = str(model_dir)
    if not torch.cuda.is_available():
        one_line_error(cli("translate", "--model", m, "--device", "cuda", stdin="Qui ?\n"),
                       "--device", "cuda")
    one_line_error(cli("translate", "--model", m, "--device", "tpu", stdin="Qui ?\n"), "tpu")
    for option in ("--batch-size", "--beam"):
        for value in ("0", "-3", "two"):
            one_line_error(cli("translate", "--model", m, option, value), option)
    one_line_error(cli("translate", "--model", m, "--alpha", "-1"), "--alpha")
    one_line_error(cli("translate", "--model", m, "--max-len-a", "-1"), "--max-len-a")
    one_line_error(cli("translate", "--model", m, "--max-len-b", "1.5"), "--max-len-b")
    one_line_error(cli("translate", "--model", m, "--max-len-cap", "0"), "--max-len-cap")
    one_line_error(cli("translate", "--model", m, "--beam", "2", "--nbest", "3"), "--nbest")
    bad = "Où est la gare ?\nQui a fait ça ?\n".encode() + b"Pourquoi \xff pas ?\n"
    one_line_error(cli("translate", "--model", m, stdin=bad), "line 3", "UTF-8")
    one_line_error(cli("translate", "--model", m, "--input", "/nonexistent/x.fr"),
                   "/nonexistent/x.fr")


def test_a_long_sentence_is_read_whole_and_its_output_limit_follows_its_length(
        model_dir: Path) -> None:
    """The model was saved with 12 as its longest training source: a 40-word sentence is
    encoded whole (no cut, no warning), and its output may be longer than the training's."""
    tr = Translator(model_dir)
    long = " ".join(["pourquoi"] * 40) + " ?"
    assert len(tr.encode(long)) == 42  # 41 tokens and _eos_
    r = cli("translate", "--model", str(model_dir), "--tokens", "--max-len-a", "0",
            "--max-len-b", "30", stdin=long + "\nqui ?\n")
    assert r.returncode == 0 and r.stderr == ""
    # this random model never says _eos_: the limit is what stops it
    assert [len(line.split()) for line in r.stdout.splitlines()] == [30, 30]
    # a * length + b, capped, per line
    for a, b, cap in ((1.0, 0, 200), (0.5, 1, 4)):
        limit = OutputLimit(a, b, cap)
        hyps = tr.search([long, "qui ?"], limit=limit)
        assert [len(h[0].ids) for h in hyps] == limit([42, 3])
    # the words of a sentence do not depend on the others' limits
    alone = tr.translate(["qui ?"], limit=OutputLimit(1.0, 2, 200))
    assert tr.translate([long, "qui ?"], limit=OutputLimit(1.0, 2, 200))[1] == alone[0]


# Made-up English, cased as people write it, for the truecaser to learn from
CASED = ["Did Tom go to Paris?", "Where did Tom go?", "What is in the box?", "Is it in the box?",
         "What did you get for Christmas?", "Does Mary live in the USA?", "Where is Mary?",
         "Why is it in the box?", "Is the box in Paris?", "Who is Tom?"]


def test_the_truecaser_learns_names_not_sentence_starts() -> None:
    best = train_truecaser(CASED)
    assert best == {"christmas": "Christmas", "mary": "Mary", "paris": "Paris", "tom": "Tom",
                    "usa": "USA"}  # "What", "Is", "Where" only ever start a sentence


@pytest.mark.parametrize("tokens,text", [
    (["what", "did", "tom", "get", "for", "christmas", "?"], "What did Tom get for Christmas?"),
    (["is", "mary", "in", "paris", "?"], "Is Mary in Paris?"),  # the start: a capital anyway
    (["tom", ",", "where", "is", "it", "?"], "Tom, where is it?"),
    (["who", "is", "in", "the", "usa", "?"], "Who is in the USA?"),
    (["who", "lives", "in", "the", "t_up", "usa", "?"], "Who lives in the USA?"),
    (["where", "is", "xyzzy", "?"], "Where is xyzzy?"),  # unknown: as it is
    (["i", "do", "n't", "know", "tom", "!"], "I don't know Tom!"),
    ([], ""),
])
def test_names_get_their_capitals(tokens: list[str], text: str) -> None:
    assert to_text(tokens, truecaser(train_truecaser(CASED))) == text


def test_a_model_directory_with_a_truecaser_translates_with_it(model_dir: Path,
                                                              tmp_path: Path) -> None:
    import json
    import shutil

    cased = tmp_path / "cased"
    shutil.copytree(model_dir, cased)
    words = [w for w in EN if w not in SPECIALS]  # every output word gets a capital
    (cased / "truecase_en.json").write_text(json.dumps({w: w.upper() for w in words}))
    assert Translator(model_dir).units.casing is None  # a model without one: as before
    plain = cli("translate", "--model", str(model_dir), stdin="Qui a fait ça ?\n").stdout
    out = cli("translate", "--model", str(cased), stdin="Qui a fait ça ?\n").stdout
    assert out.strip() and out != plain
    assert out.replace(" ", "").rstrip("?\n").isupper() and out.lower() == plain.lower()


def test_an_ensemble_translates_and_its_models_must_share_vocabularies(
        model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    text = "\n".join(SENTENCES) + "\n"
    m = str(model_dir)
    for extra in ([], ["--beam", "3"]):
        one = cli("translate", "--model", m, *extra, stdin=text)
        twice = cli("translate", "--model", m, "--model", m, *extra, stdin=text)
        assert twice.returncode == 0 and twice.stdout == one.stdout  # a model with itself
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    vocab = json.loads((other / "vocab_en.json").read_text())
    (other / "vocab_en.json").write_text(json.dumps(vocab[:-1] + ["elsewhere"]))
    one_line_error(cli("translate", "--model", m, "--model", str(other), stdin=text),
                   f"{other}: its English vocabulary differs from {m}'s")

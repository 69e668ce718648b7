"""The docs describe what exists: every `fren-nmt` command and flag they show, every
FREN_NMT_* variable and every params.yaml key they name; and the GitHub workflow can run on a
fork (it fetches the corpus itself, checked against a pinned checksum, and runs .ci/run)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import re
import typing
from pathlib import Path

import pytest
import yaml

from pipeline import params as P
from pipeline.cli import parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
PLACEHOLDERS = {"NAME", "VARIANT", "KEY", "key", "*"}
NOT_PARAMS = {"model.out"}  # code the docs quote: the model's output layer


def code_of(text: str) -> list[str]:
    """The inline code spans and the lines of fenced code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    rest = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    return [line for b in blocks for line in b.splitlines()] + re.findall(r"`([^`\n]+)`", rest)


def commands() -> dict[str, set[str]]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in p._actions for o in a.option_strings}
            for name, p in sub.choices.items()}


def documented(pattern: str) -> list[tuple[str, str]]:
    return [(doc.name, m) for doc in DOCS for code in code_of(doc.read_text())
            for m in re.findall(pattern, code)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_and_flag_exists(doc: Path) -> None:
    known = commands()
    for code in code_of(doc.read_text()):
        for part in code.split("fren-nmt ")[1:]:
            name = part.split()[0] if part.split() else ""
            if name.startswith("-"):  # fren-nmt --help
                continue
            assert name in known, f"{doc.name}: `fren-nmt {name}` is no command"
            words = re.split(r"[|;&<>]", part)[0]
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", words):
                assert flag in known[name] | {"--help"}, \
                    f"{doc.name}: `fren-nmt {name}` has no {flag}"


def test_every_documented_variable_is_read_somewhere() -> None:
    scripts = [*ROOT.glob("*.sh"), *(ROOT / ".ci").glob("*"), *(ROOT / "scripts").glob("*.sh"),
               *(ROOT / "ci").glob("*.sh"), *ROOT.glob("pipeline/**/*.py"),
               *ROOT.glob("tests/**/*.py"), *ROOT.glob(".github/workflows/*.yml")]
    code = "\n".join(p.read_text() for p in scripts)
    for doc, var in documented(r"\bFREN_NMT_[A-Z_]+\b"):
        assert var in code, f"{doc}: {var} is read by no script or module"


SECTIONS = P.SECTIONS


def param_exists(path: list[str]) -> bool:
    """A key of a params section's dataclass (a variant's sections are model, train and
    runtime), or a placeholder such as NAME or max_len_*."""
    if path[0] == "variants":
        if len(path) < 2 or path[1] in PLACEHOLDERS:
            return True
        if path[1] not in PARAMS["variants"]:
            return False
        if len(path) == 2:
            return True
        if path[2] not in ("model", "train", "runtime"):
            return False
        path = path[2:]
    cls: object = SECTIONS.get(path[0])
    for key in path[1:]:
        if key in PLACEHOLDERS or key.endswith("*"):
            return True
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(
            cls) else {}
        if key not in fields:
            return isinstance(cls, dict) or cls is dict  # a mapping's own keys (pretrained.fr)
        hint = typing.get_type_hints(cls)[key]
        cls = hint if dataclasses.is_dataclass(hint) else typing.get_origin(hint) or hint
    return cls is not None


def test_every_documented_param_exists() -> None:
    sections = "|".join(PARAMS)
    found = documented(rf"(?<![\w./-])(?:-S\s*|\+)?((?:{sections})\.[A-Za-z0-9_*.]+[A-Za-z0-9_*])")
    assert len(found) > 30  # the pattern finds the params the docs talk about
    files = ("py", "md", "json", "yaml", "sh", "txt", "tsv", "parquet", "npy", "pt", "tar", "zip")
    for doc, name in found:
        if name.rsplit(".", 1)[-1] in files or name in NOT_PARAMS:  # a file, or code
            continue
        assert param_exists(name.split(".")), f"{doc}: `{name}` is not a key of params.yaml"


def test_the_workflow_fetches_a_checked_corpus_and_runs_ci_run() -> None:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = next(iter(flow["jobs"].values()))
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "bash .ci/run" in runs
    assert "sha256sum --check" in runs and "../shared" not in str(flow)
    pinned = job["env"]["CORPUS_SHA256"]
    tarball = Path(os.environ.get("FREN_NMT_TARBALL", ROOT.parent / "shared" / "data" /
                                  "training-giga-fren-tatoeba.tar"))
    if tarball.exists():  # the bytes every baseline was made on
        assert hashlib.sha256(tarball.read_bytes()).hexdigest() == pinned

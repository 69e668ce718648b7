"""The project's own bookkeeping: dvc.yaml names every module a stage runs, and params.yaml
agrees with the defaults in pipeline/params.py."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from pipeline import params as P

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
YAML = yaml.safe_load((ROOT / "params.yaml").read_text())


def project_imports(module: Path) -> set[str]:
    """Every project file that running `module` imports, directly or through another one
    (imports inside functions count: they run when the stage calls them)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        path = todo.pop()
        rel = str(path.relative_to(ROOT))
        if rel in seen:
            continue
        seen.add(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] in ("pipeline", "stages"):
                    candidate = ROOT / (name.replace(".", "/") + ".py")
                    if candidate.is_file():
                        todo.append(candidate)
    return {s for s in seen if not s.endswith("__init__.py")}


def stage_deps(name: str) -> tuple[Path, set[str]]:
    stage = DVC["stages"][name]
    body = stage.get("do", stage)
    script = body["cmd"].split()[2]  # python -m stages.X [item]
    return ROOT / (script.replace(".", "/") + ".py"), set(body["deps"])


def modules_of(dep: str) -> set[str]:
    """The project modules a dependency covers: a file, or every module of a folder."""
    path = ROOT / dep
    if path.is_dir():
        return {str(p.relative_to(ROOT)) for p in path.rglob("*.py")
                if p.name != "__init__.py"}
    return {dep} if dep.endswith(".py") else set()


@pytest.mark.parametrize("name", list(DVC["stages"]))
def test_every_stage_depends_on_every_module_it_runs(name: str) -> None:
    """And on nothing else: a folder only where the stage runs every module in it, so that an
    edit reruns exactly the stages that run it."""
    script, deps = stage_deps(name)
    runs = project_imports(script)
    covered = set().union(*(modules_of(d) for d in deps))
    missing = sorted(runs - covered)
    assert not missing, f"dvc.yaml: stage {name} lacks deps {missing}"
    stale = sorted(d for d in deps if modules_of(d) - runs)
    assert not stale, f"dvc.yaml: stage {name} depends on modules it does not run: {stale}"


def test_no_evaluation_depends_on_training_code() -> None:
    _, deps = stage_deps("evaluate")
    assert not any(d.startswith("pipeline/training") for d in deps)
    assert not any(m.startswith("pipeline/training")
                   for m in project_imports(ROOT / "stages/evaluate.py"))


def test_the_import_walk_sees_indirect_and_function_level_imports() -> None:
    found = project_imports(ROOT / "stages/train.py")
    assert {"pipeline/params.py", "pipeline/files.py", "pipeline/data/batches.py"} <= found
    # cli imports translate inside a function, and translate imports tokenize
    assert "pipeline/data/tokenize.py" in project_imports(ROOT / "pipeline/cli.py")


SECTIONS = P.SECTIONS


def plain(value: object) -> object:
    if dataclasses.is_dataclass(value):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("name", list(SECTIONS))
def test_params_yaml_holds_the_code_defaults(name: str) -> None:
    # pipeline/params.py's dataclasses are the one source of defaults; params.yaml shows every
    # knob with that value (epochs and lr are per variant, and data.url may point elsewhere).
    # The transformer's own keys are shown in its variant's section, with the code's values.
    defaults = plain(SECTIONS[name]())
    written = dict(YAML[name])
    per_variant = {"train": {"epochs", "lr"},
                   "model": P.KIND_KEYS["transformer"] - P.KIND_KEYS["gru"]}.get(name, set())
    assert set(written) | per_variant == set(defaults), name
    if name == "model":
        written.update({k: YAML["variants"]["transformer"]["model"][k] for k in per_variant})
    for key, value in written.items():
        if (name, key) != ("data", "url"):
            assert value == defaults[key], f"{name}.{key}: params.yaml {value!r}, code " \
                f"{defaults[key]!r}"


def test_every_variant_shows_its_epochs_and_lr() -> None:
    for variant in P.variant_names():
        assert {"epochs", "lr"} <= set(YAML["variants"][variant]["train"]), variant
    basic = YAML["variants"]["basic"]["train"]
    assert (basic["epochs"], basic["lr"]) == (P.TrainConfig().epochs, P.TrainConfig().lr)


@pytest.mark.parametrize("where,value,allowed", [
    ("train.lr", 0.0, "> 0"), ("train.lr", -1e-3, "> 0"),
    ("model.emb_dropout", 1.0, "in [0, 1)"), ("model.out_dropout", -0.1, "in [0, 1)"),
    ("model.enc_hidden", 0, "> 0"), ("model.att_hidden", -5, "> 0"),
    ("model.enc_layers", 0, "> 0"), ("embeddings.dim", 0, "> 0"),
    ("vocab.max_len_percentile", 0.0, "in (0, 100]"),
    ("vocab.max_len_percentile", 101.0, "in (0, 100]"),
    ("vocab.valid_fraction", 0.0, "in (0, 1)"), ("vocab.valid_fraction", 1.0, "in (0, 1)"),
    ("tokenize.max_en_tokens", 0, "> 0"), ("train.batch_size", 0, "> 0"),
    ("train.epochs", 0, "> 0"), ("evaluate.beam_size", 0, "> 0"),
    ("evaluate.alpha", -1.0, "from 0 to 10"), ("evaluate.alpha", 11.0, "from 0 to 10"),
    ("runtime.bucket", 0, "> 0"),
    ("runtime.processes", 0, "> 0"),
])
def test_out_of_range_params_name_the_param(where: str, value: object, allowed: str) -> None:
    section, key = where.split(".")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if (section, key) in (("train", "lr"), ("train", "epochs")):  # set per variant
        params["variants"]["attention"]["train"][key] = value
    else:
        params[section][key] = value
    with pytest.raises(P.PipelineError) as e:
        if section in ("model", "train"):
            P.variant_configs(params, "attention")
        elif section == "runtime":
            P.variant_runtime(params, "attention")
        else:
            P.section(params, section, SECTIONS[section])
    message = str(e.value)
    per_variant = section in ("model", "train", "runtime")
    assert message == f"{'variants.attention.' if per_variant else ''}" \
        f"{where}: {value!r} is out of range (must be {allowed})"


def test_a_variant_override_out_of_range_names_the_variant() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["variants"]["bidir"]["train"]["lr"] = 0.0
    with pytest.raises(P.PipelineError, match=r"^variants\.bidir\.train\.lr: 0\.0 is out"):
        P.variant_configs(params, "bidir")


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    import os

    from pipeline.files import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        os.umask(0o077)
        write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_vocab_refuses_a_split_without_training_or_validation_pairs() -> None:
    import pandas as pd

    from pipeline.data.vocab import build_ids

    tokens = pd.DataFrame({"fr_tokens": [["qui", "?"]] * 3, "en_tokens": [["who", "?"]] * 3,
                           "line": range(3)})
    for fraction in (0.999999, 1e-9):
        with pytest.raises(P.PipelineError, match=r"vocab: the lesson split of 3 pairs has \d+ "
                           r"training, \d+ validation and 0 test pairs; each needs at least one"):
            build_ids(tokens, P.VocabParams(split="lesson", valid_fraction=fraction))
    # grouped: three pairs of one sentence are one group, so one set holds them all
    with pytest.raises(P.PipelineError, match=r"vocab: the grouped split of 3 pairs has"):
        build_ids(tokens, P.VocabParams())


@pytest.mark.parametrize("bad, words", [
    ({"split": "random"}, "vocab.split: 'random' is not one of grouped, lesson"),
    ({"valid_fraction": 1.5}, "vocab.valid_fraction: 1.5 is out of range (must be in (0, 1))"),
    ({"test_fraction": 1.0}, "vocab.test_fraction: 1.0 is out of range (must be in [0, 1))"),
    ({"valid_fraction": 0.6, "test_fraction": 0.4}, "leaves no training pairs")])
def test_bad_split_params_are_one_line(bad: dict, words: str) -> None:
    with pytest.raises(P.PipelineError) as e:
        P.from_dict(P.VocabParams, bad, "vocab")
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["epochs", "lr"])
def test_a_shared_train_key_that_every_variant_overrides_is_refused(key: str) -> None:
    """`dvc exp run -S +train.epochs=2` adds a key that no variant would read."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"][key] = 2
    with pytest.raises(P.PipelineError) as e:
        P.variant_configs(params, "basic")
    message = str(e.value)
    assert message.startswith(f"train.{key}: every variant sets its own (")
    for variant in P.variant_names():
        assert f"variants.{variant}.train.{key}" in message
    assert "\n" not in message
    del params["variants"]["all"]["train"][key]  # one variant reads it: allowed
    P.variant_configs(params, "all")


def test_params_merge_keeps_comments_and_order(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    path.write_text(original)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "merge_params.py"), str(path),
                    str(ROOT / "ci/params.yaml"), "data.url=/data/x.tar", "train.clip=0.5"],
                   check=True, cwd=ROOT)
    merged = path.read_text()
    changed = [(a, b) for a, b in zip(original.splitlines(), merged.splitlines()) if a != b]
    assert len(original.splitlines()) == len(merged.splitlines())
    for before, after in changed:  # only values change; each line keeps its comment
        assert before.split("#")[1:] == after.split("#")[1:], (before, after)
        assert before.split(":")[0] == after.split(":")[0]
    new = yaml.safe_load(merged)
    assert new["data"]["url"] == "/data/x.tar" and new["train"]["clip"] == 0.5
    ci = yaml.safe_load((ROOT / "ci/params.yaml").read_text())  # the overlay's values win
    assert new["runtime"]["threads"] == ci["runtime"]["threads"] == 1
    over = ci["variants"]["all"]["train"]
    assert {k: new["variants"]["all"]["train"][k] for k in over} == over
    assert new["variants"]["all"]["train"]["teacher_forcing"] is True  # merged, not replaced
    assert new["data"]["sha256"] is None  # what the overlay does not name stays


@pytest.mark.parametrize("args, words", [
    (["--bogus"], "run.sh takes -S KEY=VALUE ... or --quick, not '--bogus'"),
    (["-S"], "-S needs KEY=VALUE"),
    (["-S", "train.clip=0.5", "-n", "x"], "not '-n'"),
])
def test_run_sh_refuses_what_it_cannot_pass_on_before_installing(tmp_path: Path, args: list[str],
                                                                 words: str) -> None:
    """run.sh writes -S values into params.yaml and reproduces through the lanes, so any other
    dvc exp run option would be dropped: it is refused at once, with nothing installed or
    written (PATH holds dirname alone: an install would fail at pip, not with this message)."""
    import shutil
    import subprocess

    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    (tmp_path / "params.yaml").write_text("untouched\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dirname").symlink_to(shutil.which("dirname"))
    r = subprocess.run(["/bin/bash", "run.sh", *args], cwd=tmp_path, capture_output=True,
                       text=True, env={"PATH": str(tmp_path / "bin")}, timeout=30)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "params.yaml").read_text() == "untouched\n"


def test_the_lanes_take_the_one_thread_variants_longest_first() -> None:
    """scripts/repro_lanes.sh's choice, run on params.yaml: the GRU family (runtime.threads 1)
    two at a time, most epochs first; the transformer (every core) after, alone."""
    import subprocess
    import sys

    script = (ROOT / "scripts" / "repro_lanes.sh").read_text()
    code = re.search(r"python3 -c '(.*?)'\)", script, re.S)
    assert code, "repro_lanes.sh no longer picks its variants with python3 -c '...'"
    r = subprocess.run([sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True,
                       text=True, check=True)
    assert r.stdout.split() == ["attention", "all", "basic", "bidir", "teacher_forcing"]


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    import re

    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in text.splitlines() if line.startswith("#")}


def test_every_link_in_the_readme_and_docs_leads_somewhere() -> None:
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 5
    broken = []
    for page in pages:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if link.startswith(("http://", "https://")):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.name}: {link}")
            elif anchor and target.suffix == ".md" and \
                    anchor not in _anchors(target.read_text(encoding="utf-8")):
                broken.append(f"{page.name}: {link} (no such heading)")
    assert not broken


def _keys_read(path: str, cls: str) -> set[str]:
    """The ModelConfig keys class `cls` of `path` reads (self.cfg.KEY and cfg.KEY)."""
    tree = ast.parse((ROOT / path).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)
            and (isinstance(a.value, ast.Name) and a.value.id == "cfg"
                 or isinstance(a.value, ast.Attribute) and a.value.attr == "cfg")}


def test_each_model_kind_s_keys_are_what_its_code_reads() -> None:
    fields = {f.name for f in dataclasses.fields(P.ModelConfig)}
    assert _keys_read("pipeline/models/gru.py", "Seq2Seq") & fields == P.KIND_KEYS["gru"]
    transformer = set().union(*(_keys_read("pipeline/models/transformer.py", c) for c in
                                ("Transformer", "EncoderLayer", "DecoderLayer")))
    assert transformer & fields == P.KIND_KEYS["transformer"]


def test_a_model_key_its_kind_does_not_read_is_refused() -> None:
    """`-S variants.basic.model.dropout=0.2` would train the same model: one line says why;
    so does a shared transformer key that the one transformer variant sets itself."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["variants"]["basic"]["model"]["dropout"] = 0.2
    with pytest.raises(P.PipelineError, match=r"^variants\.basic\.model\.dropout: a gru model "
                       r"does not read dropout \(it reads att_hidden, "):
        P.variant_configs(params, "basic")
    params["variants"]["transformer"]["model"]["att_hidden"] = 64
    del params["variants"]["basic"]["model"]["dropout"]
    with pytest.raises(P.PipelineError, match=r"^variants\.transformer\.model\.att_hidden: a "
                       "transformer model does not read att_hidden"):
        P.variant_configs(params, "transformer")
    del params["variants"]["transformer"]["model"]["att_hidden"]
    params["model"]["dropout"] = 0.2
    with pytest.raises(P.PipelineError, match=r"^model\.dropout: every variant that reads it "
                       r"sets its own \(variants\.transformer\.model\.dropout\)"):
        P.variant_configs(params, "basic")
    del params["variants"]["transformer"]["model"]["dropout"]  # now the shared one is read
    assert P.variant_configs(params, "transformer")[0].dropout == 0.2


def test_the_variants_are_listed_once_in_params_yaml() -> None:
    """dvc.yaml's stages loop over params.yaml's variants, and its combined plot is a table
    the curves stage writes from that list: no variant is named in dvc.yaml."""
    for name in ("train", "evaluate"):
        assert DVC["stages"][name]["foreach"] == "${variants}"
    assert "variants" in DVC["stages"]["curves"]["params"]

    def strings(obj: object) -> list[str]:
        if isinstance(obj, dict):
            return [w for k, v in obj.items() for w in strings(k) + strings(v)]
        if isinstance(obj, list):
            return [w for v in obj for w in strings(v)]
        return [str(obj)]

    # a variant would be named as a stage (train@basic) or a folder of its own (models/basic)
    def named(obj: object) -> set[str]:
        found = {m for text in strings(obj) for m in re.findall(
            r"(?:@|(?<![\w/])(?:dvclive|models|metrics|reports|checkpoints)/)(\w+)", text)}
        return found & set(P.variant_names())

    assert named({"y": {"dvclive/basic/plots/metrics/val_loss.tsv": "val_loss"}}) == {"basic"}
    assert not named(["pipeline/models/transformer.py"])  # a module, not a variant's folder
    assert not named(DVC)
    assert "plots" not in DVC  # no top-level plot naming files per variant


def test_runtime_keys_live_apart_and_a_variant_may_set_its_own() -> None:
    """Where a variant runs is its own section, so that a resume's fingerprint needs no list
    of keys to leave out; `variants.NAME.runtime` overrides it (the variants queue's GPUs)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert not set(YAML["train"]) & {f.name for f in dataclasses.fields(P.RuntimeConfig)}
    params["variants"]["all"]["runtime"] = {"processes": 2, "first_gpu": 2}
    rt = P.variant_runtime(params, "all")
    assert (rt.processes, rt.first_gpu, rt.device) == (2, 2, "auto")
    assert P.variant_runtime(params, "basic").processes == 1
    params["train"]["threads"] = 2  # the old place: refused, not ignored
    with pytest.raises(P.PipelineError, match=r"^variants\.basic\.train: unknown key\(s\) "
                       "threads"):
        P.variant_configs(params, "basic")


# The words path: the settings that give back the transformer as it was before it learned from
# pieces and the pool (docs/models.md, "The words path"); the other variants never left it.
WORDS_PATH = ("variants.transformer.train.units=words", "variants.transformer.train.pool=0",
              "variants.transformer.train.question_repeats=1",
              "variants.transformer.train.batch_size=16", "variants.transformer.train.epochs=20",
              "variants.transformer.model.dropout=0.3")


def test_the_words_path_settings_give_back_every_variant_as_it_was() -> None:
    """tests/snapshots/words_path.json holds every variant's model and train configs, and the
    sections before training, as params.yaml had them when only words existed: with
    WORDS_PATH laid over today's params.yaml (as `-S` does) they are the same, value for
    value, so the same code trains the same weights (the gate's exact rows hold that)."""
    import json

    snapshot = json.loads((ROOT / "tests/snapshots/words_path.json").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for setting in WORDS_PATH:
        path, value = setting.split("=")
        *parents, leaf = path.split(".")
        node = params
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    for name, section in snapshot["sections"].items():
        assert params[name] == section, name
    assert list(params["variants"]) == list(snapshot["variants"])
    for variant, want in snapshot["variants"].items():
        model, train = P.variant_configs(params, variant)
        reads = P.KIND_KEYS[model.kind] | {"kind"}  # what its kind does not read changes nothing
        now = dataclasses.asdict(model)
        assert {k: v for k, v in now.items() if k in reads and k in want["model"]} == {
            k: v for k, v in want["model"].items() if k in reads}, variant
        assert all(now[k] == getattr(P.ModelConfig(), k) for k in reads - set(want["model"])
                   - {"kind"}), variant  # a knob added since: at its default
        now = json.loads(json.dumps(dataclasses.asdict(train)))
        assert {k: now[k] for k in want["train"]} == want["train"], variant
        # a knob added since is at its default, which trains as before it existed
        assert {k: v for k, v in now.items() if k not in want["train"]} == {
            k: getattr(P.TrainConfig(), k) for k in set(now) - set(want["train"])}, variant
    today = P.variant_configs(yaml.safe_load((ROOT / "params.yaml").read_text()), "transformer")
    assert (today[1].units, today[1].pool > 0) == ("pieces", True)  # the default moved on

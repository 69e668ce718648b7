"""usage: python3 scripts/merge_params.py PARAMS OVERRIDES|- [key.path=value ...]

Lays OVERRIDES (a YAML file, or - for none) and then each key.path=value over PARAMS, in place:
what run.sh does with its -S values, and the metrics gate to params.yaml in its scratch copy
(ci/pipeline.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# this tree's package, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.errors import PipelineError, run_main  # noqa: E402
from pipeline.files import atomic_path  # noqa: E402
from pipeline.params import load_params  # noqa: E402


def deep_merge(base: dict, over: dict) -> dict:
    """`over` laid into `base` in place, key by key (`base` keeps its comments and order when
    it is a ruamel CommentedMap), and returned."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def merge(argv: list[str]) -> None:
    """Edits the file the way DVC's own `-S` does (a ruamel.yaml round trip): its comments, key
    order and layout stay; only the values set change."""
    from ruamel.yaml import YAML

    if len(argv) < 2:
        raise SystemExit(__doc__.strip().splitlines()[0])
    load_params(argv[0])  # a clear error for a missing or broken file
    round_trip = YAML()
    round_trip.width = 4096  # never fold a line: each keeps its comment on it
    round_trip.preserve_quotes = True
    round_trip.representer.add_representer(  # null as params.yaml writes it, not as an empty value
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    params = round_trip.load(Path(argv[0]).read_text(encoding="utf-8"))
    if argv[1] != "-":
        deep_merge(params, load_params(argv[1]))
    for item in argv[2:]:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise PipelineError(f"{item!r}: expected key.path=value")
        node = params
        *parents, last = key.removeprefix("+").split(".")  # DVC's +key=value: add a key
        for k in parents:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[last] = yaml.safe_load(value)
    with atomic_path(argv[0]) as tmp:  # never a half-written params.yaml
        with open(tmp, "w", encoding="utf-8") as f:
            round_trip.dump(params, f)



if __name__ == "__main__":
    run_main(lambda: merge(sys.argv[1:]))

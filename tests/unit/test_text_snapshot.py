"""The text path held by a snapshot: the exact English text that `to_text` prints for each of a
few hundred token sequences (tokens of sentences written for this test, and what models print
that no sentence tokenizes to), and the exact tokens the French side makes of each French
sentence. The gate's exact rule sees a change to the text its models print; this sees a change
to the text path on inputs the gate's models never produce. A change meant to alter the text
updates tests/snapshots/text_path.json in the same commit, visibly:

    FREN_NMT_UPDATE_SNAPSHOT=1 python -m pytest tests/unit/test_text_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import text_cases

from pipeline.data.tokenize import tokenize
from pipeline.data.truecase import truecaser
from pipeline.data.units import to_text

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "text_path.json"
UPDATE = "FREN_NMT_UPDATE_SNAPSHOT=1 python -m pytest tests/unit/test_text_snapshot.py"


def printed(case: dict, casing: object) -> str:
    return to_text(case["tokens"], casing if case["truecased"] else None)


def source_tokens(case: dict) -> list[str]:
    return tokenize(case["text"], "fr", case["lowercase"], case["mark_caps"])


def test_the_snapshot_holds_a_few_hundred_cases() -> None:
    snap = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert len(snap["target"]) >= 300 and len(snap["source"]) >= 100
    tokens = {t for case in snap["target"] for t in case["tokens"]}
    assert {"t_up", "i", "n't", "'s", "_unk_", "1,000", '"', "gon"} <= tokens


def first_difference(kind: str, cases: list[dict], key: str, now: list) -> str | None:
    wrong = [i for i, (case, out) in enumerate(zip(cases, now)) if case[key] != out]
    if not wrong:
        return None
    i = wrong[0]
    given = {k: v for k, v in cases[i].items() if k != key}
    return (f"the {kind} text path changed on {len(wrong)} of {len(cases)} snapshot cases; "
            f"the first, case {i}: {given} gives {now[i]!r}, the snapshot says "
            f"{cases[i][key]!r}. If that is meant, update the snapshot in the same commit: "
            f"{UPDATE}")


def test_the_text_path_prints_what_the_snapshot_says() -> None:
    if os.environ.get("FREN_NMT_UPDATE_SNAPSHOT"):
        casing = truecaser(text_cases.TRUECASE)
        target = [{**c, "text": printed(c, casing)} for c in text_cases.target_inputs()]
        source = [{**c, "tokens": source_tokens(c)} for c in text_cases.source_inputs()]
        SNAPSHOT.write_text(json.dumps({"truecase": text_cases.TRUECASE, "target": target,
                                        "source": source}, ensure_ascii=False, indent=1)
                            + "\n", encoding="utf-8")
    snap = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    casing = truecaser(snap["truecase"])
    problems = [first_difference("English", snap["target"], "text",
                                 [printed(c, casing) for c in snap["target"]]),
                first_difference("French", snap["source"], "tokens",
                                 [source_tokens(c) for c in snap["source"]])]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)

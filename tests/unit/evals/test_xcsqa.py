"""X-CSQA in its published jsonl format (the data is not in ../shared: the test writes small files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.evals import TASKS
from services.common.errors import InvalidArgument, NotFound

RECORDS = {
    "en": [
        (
            "q1",
            "Where would you put a plate after washing it?",
            ["cupboard", "table", "dishwasher", "restaurant", "sink"],
            "A",
        ),
        ("q2", "What do people use to cut paper?", ["knife", "scissors", "stapler", "pen", "glue"], "B"),
        ("q3", "Where do fish live?", ["tree", "desert", "sky", "water", "house"], "D"),
    ],
    "de": [
        (
            "q1",
            "Wohin stellt man einen Teller nach dem Abwaschen?",
            ["Schrank", "Tisch", "Spülmaschine", "Restaurant", "Spüle"],
            "A",
        ),
        ("q2", "Womit schneidet man Papier?", ["Messer", "Schere", "Hefter", "Stift", "Kleber"], "B"),
        ("q3", "Wo leben Fische?", ["Baum", "Wüste", "Himmel", "Wasser", "Haus"], "D"),
    ],
}


def write_xcsqa(root: Path, layout: str = "release") -> Path:
    for lang, rows in RECORDS.items():
        path = root / lang / "dev.jsonl" if layout == "release" else root / f"{lang}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(
                {
                    "id": qid,
                    "lang": lang,
                    "question": {
                        "stem": stem,
                        "choices": [{"label": "ABCDE"[i], "text": t} for i, t in enumerate(texts)],
                    },
                    "answerKey": answer,
                },
                ensure_ascii=False,
            )
            for qid, stem, texts, answer in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("layout", ["release", "flat"])
def test_prompts_options_and_gold(tmp_path: Path, layout: str):
    config = TASKS.get("xcsqa").options(languages=["en", "de"], sample_size=2, data_dir=write_xcsqa(tmp_path, layout))
    task = TASKS.get("xcsqa")
    en, de = task.build_items(config, "en", seed=42), task.build_items(config, "de", seed=42)
    assert [i.id for i in en] == [i.id for i in de] and len(en) == 2
    item = de[0]
    assert item.prompt.startswith("### Human: Beantworte die folgende Multiple-Choice-Frage")
    assert item.prompt.endswith("### Assistant:") and item.response_prefix == " Antwort:"
    assert "\nA. " in item.prompt and "\nE. " in item.prompt and item.question in item.prompt
    assert item.answers[0] == "ABCDE"[item.label] and item.choices[item.label] in item.prompt


def test_scoring_extracts_the_letter(tmp_path: Path):
    config = TASKS.get("xcsqa").options(languages=["en"], data_dir=write_xcsqa(tmp_path))
    task = TASKS.get("xcsqa")
    items = {i.id: i for i in task.build_items(config, "en", seed=42)}
    assert task.score(items["q2"], " B") == {"accuracy": 1.0}
    assert task.score(items["q2"], " (A) knife") == {"accuracy": 0.0}
    assert task.score(items["q3"], " fish live in the water") == {"accuracy": 1.0}
    assert task.score(items["q1"], " I do not know") == {"accuracy": 0.0}


def test_bad_files_are_named(tmp_path: Path):
    task = TASKS.get("xcsqa")
    with pytest.raises(InvalidArgument, match="no X-CSQA data"):
        task.build_items(TASKS.get("xcsqa").options(languages=["en"], source=None), "en", seed=42)
    with pytest.raises(NotFound, match="en/dev.jsonl"):
        task.build_items(TASKS.get("xcsqa").options(languages=["en"], data_dir=tmp_path), "en", seed=42)
    (tmp_path / "en.jsonl").write_text('{"id": "x", "question": {"stem": "?", "choices": []}, "answerKey": "A"}\n')
    with pytest.raises(InvalidArgument, match=r"en.jsonl:1: answerKey 'A' is not a choice label"):
        task.build_items(TASKS.get("xcsqa").options(languages=["en"], data_dir=tmp_path), "en", seed=42)

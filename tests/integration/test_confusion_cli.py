"""`polyglot confusion FILE`: replies built from the Language Confusion Benchmark's own prompts, checked in
this process and through a real lid service on loopback (the same verdicts), every record accounted for;
a malformed record exits 2 naming its line and field, and nothing is written."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.fixtures.lid import running_lid


def lcb_replies(lcb: Path, n: int) -> list[dict]:
    """`n` records whose replies are LCB prompts: a third get a line of another language, a few are empty."""
    rng = random.Random(0)
    texts = {}
    for path in sorted((lcb / "test_sets" / "monolingual").glob("okapi/*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts[path.stem] = [row["prompt"].strip() for row in csv.DictReader(handle) if row["prompt"].strip()]
    codes = sorted(texts)
    records = []
    for i in range(n):
        language = codes[i % len(codes)]
        reply = rng.choice(texts[language])
        if i % 3 == 0:
            reply += "\n" + rng.choice(texts[codes[(i + 1) % len(codes)]])
        records.append({"id": f"r{i}", "prompt": "…", "reply": "" if i % 17 == 0 else reply, "language": language,
                        "source": "okapi"})  # fmt: skip
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lcb(shared_dir) -> Path:
    return shared_dir / "data" / "lcb"


def verdicts(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(r["id"], r["lid_lines"].get("line_pass"), r["lid_lines"].get("word_pass"),
             [(x["language"], x["passed"]) for x in r["lid_lines"].get("lines", [])]) for r in rows]  # fmt: skip


def test_in_process_and_through_the_service_give_the_same_verdicts_for_every_record(lcb, tmp_path):
    from services.lid.core import LanguageIdentifier

    records = lcb_replies(lcb, 150)
    file = write_jsonl(tmp_path / "replies.jsonl", records)
    words = ["--words", str(lcb / "words")]
    local = CliRunner().invoke(app, ["confusion", str(file), *words, "--out", str(tmp_path / "a")])
    assert local.exit_code == 0, local.output
    with running_lid(LanguageIdentifier(word_list=lcb / "words")) as address:
        served = CliRunner().invoke(app, ["confusion", str(file), "--lid", address, "--out", str(tmp_path / "b")])
    assert served.exit_code == 0, served.output
    assert verdicts(tmp_path / "a") == verdicts(tmp_path / "b")
    assert [v[0] for v in verdicts(tmp_path / "a")] == [r["id"] for r in records]  # count in = count out, in order
    assert "150 records in, 150 out" in " ".join(local.output.split())
    assert "score lid lines: 150/150" in " ".join(local.output.split())  # progress, off a terminal
    table = list(csv.DictReader((tmp_path / "a" / "table.csv").open(encoding="utf-8")))
    assert sum(int(row["records"]) for row in table) == 150
    assert sum(int(row["skipped"]) for row in table) == sum(1 for r in records if not r["reply"])  # empty replies
    assert {row["language"] for row in table} == {r["language"] for r in records}
    matrix = list(csv.DictReader((tmp_path / "a" / "matrix.csv").open(encoding="utf-8")))
    assert sum(int(v) for row in matrix for k, v in row.items() if k != "expected") == sum(
        int(row["failing_lines"]) for row in table
    )
    assert (tmp_path / "a" / "figures" / "confusion-matrix.svg").is_file()


def test_a_malformed_record_exits_2_naming_line_and_field(lcb, tmp_path):
    records = lcb_replies(lcb, 4)
    del records[1]["reply"]  # line 2
    records[3]["language"] = "not-a-language"  # line 4
    file = write_jsonl(tmp_path / "bad.jsonl", records)
    run = CliRunner().invoke(app, ["confusion", str(file), "--out", str(tmp_path / "out")])
    assert run.exit_code == 2
    text = " ".join(run.output.split())
    assert "2 record(s) refused" in text and "bad.jsonl:2: reply: is missing" in text
    assert "bad.jsonl:4: language:" in text
    assert not (tmp_path / "out").exists()

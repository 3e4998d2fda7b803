"""`polyglot score` on outputs in the paper's released shapes (`system` = reply, `source` = instruction,
`reference` = gold; task, language, variant, seed and model from the file and directory names) reproduces
hand-computed XQuAD and language-agreement numbers, and a malformed record exits 2 naming line and field.
Chat's LID is lid.176 in-process (the default without --lid).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

MODEL = "llama_2_7b_hf_ml2_merged"  # the paper's output directory: the model


def xquad_prompt(question: str) -> str:
    return (
        "### Human: Answer the question from the given passage.\n\nPassage:\n\n...\n\nQuestion:\n\n"
        f'{question}\n\nNote: ...### Assistant: Based on the passage, the answer to the question is "'
    )


# (reply, gold, em, f1): the paper's post-processing keeps the first line and drops quotes and punctuation.
XQUAD = [
    ('308".\n\nThe Panthers gave up 308 points.', "308", 1.0, 1.0),
    ('Kawann Short" fue quien', "Kawann Short", 0.0, 2 * 0.5 * 1.0 / 1.5),  # 2 of 4 tokens right, all of gold
    ('cuatro".', "4", 0.0, 0.0),
]
SPANISH = (
    "Larry Page es un empresario estadounidense, conocido como cofundador de Google.\n"
    "Nació en el año 1973 en la ciudad de East Lansing, en Michigan."
)
ENGLISH = (
    "Larry Page is an American businessman, best known as a co-founder of Google.\n"
    "He was born in 1973 in East Lansing, Michigan, in the United States."
)
MIXED = SPANISH + "\nHe also served as the chief executive of Alphabet for several years."
# (reply, lang_match = tgt_lang, line pass rate) for a Spanish prompt whose target is Spanish
CHAT = [(SPANISH, 1.0, 1.0), (ENGLISH, 0.0, 0.0), (MIXED, 1.0, 2 / 3)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def paper_files(tmp_path) -> dict[str, Path]:
    question = ["¿Cuántos puntos?", "¿Quién lideró?", "¿Cuántos balones?"]
    xquad = [
        {
            "prompt": xquad_prompt(q),
            "system": reply,
            "finish_reason": "stop",
            "source": xquad_prompt(q),
            "secs": 0.2,
            "reference": gold,
        }  # fmt: skip
        for q, (reply, gold, _, _) in zip(question, XQUAD, strict=True)
    ]
    chat = [
        {"prompt": '### Human: "¿Quién es Larry Page?"### Assistant:', "system": reply, "finish_reason": "stop",
         "source": '"¿Quién es Larry Page?"', "secs": 1.7, "source_lang": "spa_Latn", "system_lang": "spa_Latn"}
        for reply, _, _ in CHAT
    ]  # fmt: skip
    names = {
        "xquad": "xquad_dev_en_es-none-blank-s42-k50-p0.9-t0.001-b128.jsonl",
        "chat": "alpaca_eval_instructions_es-none-guanaco_prompt-s0-k50-p0.9-t0.8-b8.jsonl",
    }
    return {task: write_jsonl(tmp_path / MODEL / names[task], records) for task, records in (("xquad", xquad),
            ("chat", chat))}  # fmt: skip


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_paper_xquad_outputs_score_as_computed_by_hand(paper_files, tmp_path):
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["score", str(paper_files["xquad"]), "--out", str(out)])
    assert run.exit_code == 0, run.output
    records = results(out)
    assert [(r["mix"], r["task"], r["variant"], r["language"], r["seed"]) for r in records] == [
        (MODEL, "xquad", "en:xx", "es", 42)
    ] * 3
    assert [r["metrics"]["em"] for r in records] == [em for *_, em, _ in XQUAD]
    assert [r["metrics"]["f1"] for r in records] == pytest.approx([f1 for *_, f1 in XQUAD])
    aggregate = json.loads((out / "aggregate.json").read_text())
    f1 = next(row for row in aggregate["rows"] if row["metric"] == "f1")
    assert f1["mean"] == pytest.approx((1 + 2 / 3) / 3) and f1["mix"] == MODEL
    assert f"| {MODEL} |" in (out / "report.md").read_text()


def test_paper_chat_outputs_get_the_language_agreement_computed_by_hand(paper_files, tmp_path):
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["score", str(paper_files["chat"]), "--out", str(out)])
    assert run.exit_code == 0, run.output
    printed = " ".join(run.output.split())
    assert "scored 3 of 3 records" in printed
    # Progress off a terminal: a line per stage as it completes (prompts and replies are identified).
    assert "score lid identify: 6/6" in printed and "score lid check: 3/3" in printed
    records = results(out)
    assert [r["outcome"] for r in records] == ["ok"] * 3
    assert [r["metrics"]["lang_match"] for r in records] == [match for _, match, _ in CHAT]
    assert [r["metrics"]["tgt_lang"] for r in records] == [match for _, match, _ in CHAT]
    assert [r["metrics"]["line_pass_rate"] for r in records] == pytest.approx([rate for *_, rate in CHAT])
    assert all("helpfulness" not in r["metrics"] for r in records)  # no --judge: no grade


def test_a_csv_in_our_schema_scores_too(tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_text(
        "task,language,variant,model,id,prompt,reply,answers\n"
        'xquad,de,xx:xx,mine,q1,Wo?,"""Berlin"", weil",Berlin\n'
        'xquad,de,xx:xx,mine,q2,Wer?,Goethe,"[""Schiller"", ""Goethe""]"\n',
        encoding="utf-8",
    )
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["score", str(path), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert [(r["item_id"], r["metrics"]["em"]) for r in results(out)] == [("q1", 1.0), ("q2", 1.0)]


def test_malformed_records_exit_2_naming_every_line_and_field(paper_files, tmp_path):
    records = [json.loads(line) for line in paper_files["xquad"].read_text().splitlines()]
    del records[1]["system"]  # line 2: no reply
    records[2]["language"] = "xx-nope"  # line 3: not a language
    path = write_jsonl(tmp_path / "bad" / paper_files["xquad"].name, records)
    run = CliRunner().invoke(app, ["score", str(path), "--out", str(tmp_path / "report")])
    assert run.exit_code == 2
    text = " ".join(run.output.split())
    assert "2 record(s) refused" in text
    assert ":2: reply: is missing" in text
    assert ":3: language:" in text
    assert not (tmp_path / "report").exists()  # nothing scored from a file with refused lines


def test_with_a_judge_chat_gets_helpfulness_and_the_gate(paper_files, tmp_path, openai_server, judge_settings_factory):
    from tests.fixtures.judge import running_judge

    out = tmp_path / "report"
    with running_judge(judge_settings_factory(openai_server.base_url)) as judge:
        run = CliRunner().invoke(app, ["score", str(paper_files["chat"]), "--out", str(out), "--judge", judge])
    assert run.exit_code == 0, run.output
    assert "score judge: 3/3" in " ".join(run.output.split())
    records = results(out)
    # The scripted judge grades 4; the English reply is gated to 1 without asking it.
    assert [r["metrics"]["helpfulness"] for r in records] == [4.0, 1.0, 4.0]
    assert [r["outcome"] for r in records] == ["ok", "language_mismatch", "ok"]
    assert openai_server.count == 2


def test_x_csqa_outputs_score_the_extracted_letter(tmp_path):
    """Our schema (options as a list) and the published X-CSQA record (question.choices, answerKey) both load."""
    options = ["Haus", "Baum", "Auto"]
    published = {"id": "q3", "question": {"stem": "Was?", "choices": [
        {"label": "B", "text": "Baum"}, {"label": "A", "text": "Haus"}, {"label": "C", "text": "Auto"}]},
        "answerKey": "A"}  # fmt: skip
    path = write_jsonl(
        tmp_path / "xcsqa.jsonl",
        [
            {"task": "xcsqa", "language": "de", "model": "m", "id": "q1", "reply": " B", "answers": "B",
             "choices": options},
            {"task": "xcsqa", "language": "de", "model": "m", "id": "q2", "reply": "Auto", "answers": "B",
             "choices": options},
            published | {"task": "xcsqa", "language": "de", "model": "m", "reply": "A: Haus"},
        ],  # fmt: skip
    )
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["score", str(path), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert [(r["item_id"], r["metrics"]["accuracy"]) for r in results(out)] == [("q1", 1.0), ("q2", 0.0), ("q3", 1.0)]


def test_x_csqa_needs_a_gold_letter_among_its_options(tmp_path):
    path = write_jsonl(
        tmp_path / "xcsqa.jsonl",
        [{"task": "xcsqa", "language": "de", "model": "m", "reply": "A", "answers": "E", "choices": ["x", "y"]},
         {"task": "xcsqa", "language": "de", "model": "m", "reply": "A", "answers": "A"}],  # fmt: skip
    )
    run = CliRunner().invoke(app, ["score", str(path), "--out", str(tmp_path / "report")])
    assert run.exit_code == 2
    text = " ".join(run.output.split())
    assert ":1: answers: must be the gold letter, one of A, B" in text
    assert ":2: choices:" in text

"""Conversation sources: local Guanaco-format jsonl (the real OASST file) and `datasets` loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.config import ConversationSource
from flows.data.sources import content_hash, from_records, load_conversations, read_hub, read_jsonl
from services.common.errors import InvalidArgument, NotFound


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_real_oasst_file(shared_dir: Path):
    source = ConversationSource(source=str(shared_dir / "data/oasst/qlora_oa_questions.jsonl"))
    loaded = load_conversations(source)
    assert len(loaded) == 953 and loaded.incomplete == 0
    assert loaded.source == "qlora_oa_questions.jsonl"  # a name, not a machine's path
    first = loaded.conversations[0]
    assert first.id == "a38b3d1c-256f-47c5-ab68-c9ab766bad84" and first.source_lang == "ru"
    # input (context) + output (reply), in the hub layout
    assert first.text.startswith("### Human: Напиши функцию на языке swift")
    assert "на экран### Assistant: Вот функция" in first.text
    assert all(c.text.count("### Assistant:") == c.text.count("### Human:") for c in loaded.conversations)
    assert load_conversations(source).sha256 == loaded.sha256


def test_input_output_and_text_records(tmp_path: Path):
    path = _write(
        tmp_path / "conv.jsonl",
        [
            {"input": "### Human: Hi ### Assistant:", "output": "Hello", "message_id": "m1", "lang": "en"},
            {"input": "### Human: Hi", "output": "Hello"},  # no open marker: the reply still becomes a turn
            {"text": "### Human: Q### Assistant: A", "id": 7},
        ],
    )
    convs = read_jsonl(path)
    assert [c.id for c in convs] == ["m1", "0000001", "7"]
    assert [c.text for c in convs] == ["### Human: Hi### Assistant: Hello"] * 2 + ["### Human: Q### Assistant: A"]


def test_incomplete_conversations_are_left_out_and_counted(tmp_path: Path):
    path = _write(
        tmp_path / "conv.jsonl",
        [
            {"text": "### Human: a### Assistant: b", "id": "ok"},
            {"text": "### Human: unanswered", "id": "open"},
            {"text": "### Human: a### Assistant: b### Human: c", "id": "ends-with-human"},
        ],
    )
    loaded = load_conversations(ConversationSource(source=str(path)))
    assert [c.id for c in loaded.conversations] == ["ok"] and loaded.incomplete == 2
    assert loaded.sha256 == content_hash(loaded.conversations)


def test_bad_sources_name_the_problem(tmp_path: Path):
    with pytest.raises(NotFound, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "### Human: a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"bad.jsonl:2: not JSON"):
        read_jsonl(bad)
    with pytest.raises(InvalidArgument, match="duplicate id"):
        from_records([{"text": "a", "id": 1}, {"text": "b", "id": 1}])
    with pytest.raises(InvalidArgument, match=r"\[0\] has no `text`"):
        from_records([{"prompt": "x"}])


def test_content_hash_follows_content_not_location(tmp_path: Path):
    records = [{"text": "### Human: a### Assistant: b", "id": "x"}]
    a = read_jsonl(_write(tmp_path / "a.jsonl", records))
    b = read_jsonl(_write(tmp_path / "b.jsonl", records))
    assert content_hash(a) == content_hash(b)
    c = read_jsonl(_write(tmp_path / "c.jsonl", [{"text": "### Human: a### Assistant: c", "id": "x"}]))
    assert content_hash(c) != content_hash(a)


@pytest.mark.slow  # importing datasets and building its cache takes ~6 s
def test_hub_loader_reads_through_datasets(tmp_path: Path, monkeypatch):
    # The same code path as `timdettmers/openassistant-guanaco`, pointed at a local dataset directory
    # (nothing here reaches the hub): `datasets.load_dataset(<id or dir>, split=...)`.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data_dir = tmp_path / "guanaco"
    data_dir.mkdir()
    _write(
        data_dir / "train.jsonl",
        [{"text": "### Human: Hola### Assistant: ¡Hola!"}, {"text": "### Human: Hi### Assistant: Hey"}],
    )
    convs = read_hub(str(data_dir), "train")
    assert [c.text for c in convs] == ["### Human: Hola### Assistant: ¡Hola!", "### Human: Hi### Assistant: Hey"]
    assert [c.id for c in convs] == ["0000000", "0000001"]

"""LID labelling through the lid service's real core (lid.176), and the paper's confidence filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.data.labelling import (
    Labeller,
    confident,
    core_labeller,
    label_conversations,
    label_language,
    language_counts,
)
from flows.data.sources import Conversation, read_jsonl


@pytest.fixture(scope="module")
def labeller(lid_identifier) -> Labeller:
    return core_labeller(lid_identifier, batch_size=64)


def test_labels_are_registry_codes_with_probabilities(labeller: Labeller):
    convs = [
        Conversation(
            "de", "### Human: Wie wird das Wetter morgen in Berlin?### Assistant: Morgen wird es sonnig und warm."
        ),
        Conversation("ru", "### Human: Какая завтра погода в Москве?### Assistant: Завтра будет солнечно и тепло."),
        Conversation("zh", "### Human: 明天北京的天气怎么样？### Assistant: 明天北京晴天，气温很高。"),
    ]
    rows = label_conversations(convs, labeller)
    assert [(r.id, r.lang) for r in rows] == [("de", "de"), ("ru", "ru"), ("zh", "zh")]
    assert all(0.8 <= r.prob <= 1.0 for r in rows)
    assert labeller.model.startswith("lid:lid.176.ftz@")


def test_role_markers_are_removed_before_identification(labeller: Labeller):
    seen: list[str] = []

    def recording(texts):
        seen.extend(texts)
        return labeller.identify(texts)

    # A short Spanish turn wrapped in English-looking markers: the markers must not vote.
    conv = Conversation("x", "### Human: Hola, ¿cómo estás hoy?\n### Assistant: Muy bien, gracias por preguntar.")
    [row] = label_conversations([conv], Labeller(recording, labeller.model))
    assert seen == ["Hola, ¿cómo estás hoy? Muy bien, gracias por preguntar."]
    assert row.lang == "es"


def test_threshold_holds_on_the_real_oasst_data(shared_dir: Path, labeller: Labeller):
    convs = read_jsonl(shared_dir / "data/oasst/qlora_oa_questions.jsonl")
    progress: list[int] = []
    rows = label_conversations(convs, labeller, progress.append)
    assert len(rows) == len(convs) == sum(progress) and len(progress) == -(-len(convs) // 64)
    kept = confident(rows, 0.8)
    assert kept and all(r.prob >= 0.8 and r.lang for r in kept)
    assert {r.id for r in rows if r.prob < 0.8}.isdisjoint(r.id for r in kept)
    counts = language_counts(kept)
    # lid.176 keeps enough of each paper language for the smoke recipe's K = 20 (see configs/smoke.yaml).
    assert counts["en"] >= 160 and all(counts[lang] >= 20 for lang in ("es", "ru", "de", "zh", "fr"))
    assert list(counts) == sorted(counts, key=lambda lang: (-counts[lang], lang))


def test_model_labels_map_to_iso_codes():
    assert label_language("__label__de") == "de"
    assert label_language("deu_Latn") == "de"
    assert label_language("__label__nb") == "no"
    assert label_language("__label__xx") == "xx"  # outside the registry: the model's own label

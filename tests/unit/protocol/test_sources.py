"""The pinned sources: installed only when every file matches its pin, re-checked on use, bundled offline."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from flows.protocol import sources
from tests.fixtures.paper_repo import fixture_pins, repo_files


@pytest.fixture
def files():
    return repo_files()


@pytest.fixture
def pins(files):
    return fixture_pins(files)


def test_the_shipped_pin_table_names_every_text_at_one_commit():
    pins = sources.load_pins()
    assert pins.repository == "ZurichNLP/multilingual-instruction-tuning" and len(pins.commit) == 40
    assert {"judge", "translation", "xquad", "xcsqa", "mono_ids", "alpaca_eval"} <= set(pins.roles)
    assert pins.path_of("alpaca_eval", "en") in pins.sha256


def test_install_then_verify(tmp_path, files, pins):
    directory = sources.install(tmp_path / "src", pins, files)
    assert sources.verified_sources(directory, pins) == directory
    assert (directory / "data/guanaco/ml1_ids").read_bytes() == files["data/guanaco/ml1_ids"]


def test_an_edited_cached_file_is_caught(tmp_path, files, pins):
    directory = sources.install(tmp_path / "src", pins, files)
    (directory / "llm_judge.py").write_text("edited", encoding="utf-8")
    with pytest.raises(sources.PaperSourcesMissing, match="llm_judge.py does not match its pinned SHA-256") as caught:
        sources.verified_sources(directory, pins)
    assert caught.value.field == "protocol.sources"
    assert f"polyglot protocol fetch --sources {directory}" in caught.value.message


def test_a_mismatching_file_is_never_installed(tmp_path, files, pins):
    bad = {**files, "llm_judge.py": b"not the pinned bytes"}
    with pytest.raises(sources.ChecksumMismatch, match="llm_judge.py: pinned"):
        sources.install(tmp_path / "src", pins, bad)
    assert not (tmp_path / "src").exists()


def test_unpinned_files_are_not_installed_and_the_pins_are_printable(tmp_path, files, pins):
    unpinned = dataclasses.replace(pins, sha256={**pins.sha256, "llm_judge.py": None})
    with pytest.raises(sources.Unpinned, match="--print-hashes"):
        sources.install(tmp_path / "src", unpinned, files)
    table = sources.hash_lines(unpinned, {n: sources.sha256_of(d) for n, d in files.items()})
    assert f"sha256:\n  llm_judge.py: {pins.sha256['llm_judge.py']}\n" in table
    # The printed table is a pin table: with it, the same files install.
    (tmp_path / "pins.local.yaml").write_text(table, encoding="utf-8")
    local = sources.load_pins(tmp_path / "pins.local.yaml")
    assert (local.repository, local.commit, dict(local.roles)) == (pins.repository, pins.commit, dict(pins.roles))
    assert sources.problems(sources.install(tmp_path / "src", local, files), local) == []


def test_a_directory_of_another_commit_is_refused(tmp_path, files, pins):
    directory = sources.install(tmp_path / "src", pins, files)
    other = dataclasses.replace(pins, commit="f" * 40)
    assert sources.problems(directory, other) == [
        f"{directory} holds {pins.repository}@{pins.commit}, not the pinned {pins.repository}@{'f' * 40}"
    ]


def test_bundle_round_trip(tmp_path, files, pins):
    directory = sources.install(tmp_path / "src", pins, files)
    bundle = sources.write_bundle(directory, tmp_path / "paper.tar.gz", pins)
    unpacked = sources.read_bundle(bundle, tmp_path / "air-gapped", pins)
    assert sources.problems(unpacked, pins) == []
    assert {n: (unpacked / n).read_bytes() for n in files} == files


def _config(sources_dir, **overrides):
    judge = SimpleNamespace(template=overrides.get("judge", "helpfulness"), translation_template="polyglot")
    tasks = {"xquad": SimpleNamespace(template=overrides.get("xquad", "polyglot"))}
    return SimpleNamespace(
        judge=judge,
        data=SimpleNamespace(mixes=SimpleNamespace(mono_ids=None)),
        evaluation=SimpleNamespace(tasks=tasks),
        protocol=SimpleNamespace(sources=sources_dir),
    )


def test_require_paper_sources(tmp_path, files, pins, monkeypatch):
    # use_sources() sets both: recorded here, so they are restored after the test
    monkeypatch.setenv(sources.SOURCES_ENV, str(tmp_path / "unused"))
    monkeypatch.setattr(sources, "_active", None)
    missing = tmp_path / "nowhere"
    assert sources.require_paper_sources(_config(missing), pins) is None  # the polyglot profile needs none
    with pytest.raises(sources.PaperSourcesMissing) as caught:
        sources.require_paper_sources(_config(missing, judge="paper", xquad="paper"), pins)
    message = caught.value.message
    assert message.startswith("judge.template, evaluation.tasks.xquad.template need the paper's own texts")
    assert "MANIFEST.json is missing" in message and f"polyglot protocol fetch --sources {missing}" in message
    directory = sources.install(tmp_path / "src", pins, files)
    assert sources.require_paper_sources(_config(directory, judge="paper"), pins) == directory
    assert sources.active_sources() == directory

"""Settings from the environment; the key is a secret everywhere it could be printed."""

from __future__ import annotations

from services.judge.settings import JudgeSettings


def test_openai_environment_names_are_honoured(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123456789")
    monkeypatch.setenv("POLYGLOT_JUDGE_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("POLYGLOT_JUDGE_CONCURRENCY", "32")
    monkeypatch.setenv("POLYGLOT_JUDGE_PRICES", '{"my-model": {"input": 1, "output": 2}}')
    settings = JudgeSettings()
    assert settings.api_key.get_secret_value() == "sk-from-env-123456789"
    assert settings.base_url == "http://127.0.0.1:8000/v1"
    assert settings.concurrency == 32
    assert set(settings.prices) == {"my-model"}
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "sk-from-env-123456789" not in text
    assert settings.secrets() == ["sk-from-env-123456789"]


def test_own_prefix_wins_over_openai_names(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-generic")
    monkeypatch.setenv("POLYGLOT_JUDGE_API_KEY", "sk-judge")
    assert JudgeSettings().api_key.get_secret_value() == "sk-judge"


def test_defaults_are_the_papers_judge_deterministic():
    settings = JudgeSettings(api_key=None, base_url=None)
    assert (settings.provider, settings.model, settings.temperature) == ("openai", "gpt-3.5-turbo", 0.0)
    assert settings.secrets() == []

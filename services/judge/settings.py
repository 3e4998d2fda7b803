"""The judge's settings, read from the environment (pydantic-settings), every field documented.

`POLYGLOT_JUDGE_<FIELD>` sets a field; the API key and endpoint also honour the `openai` client's own
`OPENAI_API_KEY` / `OPENAI_BASE_URL`. The key is a `SecretStr`: it prints as `**********` and is read out
only where the `openai` client is built, so it cannot reach a log line, a record or the cache.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Price(BaseModel):
    """USD per million tokens."""

    input: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output: float = Field(ge=0, description="USD per 1M completion tokens.")


def default_prices() -> dict[str, Price]:
    """The packaged price table (`services/judge/prices.yaml`); check the provider's page before trusting it."""
    data = yaml.safe_load(resources.files("services.judge").joinpath("prices.yaml").read_text("utf-8"))
    return {model: Price(**price) for model, price in data["models"].items()}


def _env(*names: str) -> AliasChoices:
    # The field name stays valid too, so code and tests can pass `JudgeSettings(api_key=...)`.
    return AliasChoices(*names)


class JudgeSettings(BaseSettings):
    """How the judge reaches its LLM, how hard it retries, where it caches."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_JUDGE_", extra="ignore", populate_by_name=True)

    provider: str = Field("openai", description="Default provider when a request names none: openai, generator.")
    model: str = Field("gpt-3.5-turbo", description="Default judge model (the paper's judge: gpt-3.5-turbo).")
    base_url: str | None = Field(
        None,
        validation_alias=_env("POLYGLOT_JUDGE_BASE_URL", "OPENAI_BASE_URL", "base_url"),
        description="OpenAI-compatible endpoint (vLLM: http://host:8000/v1); unset = api.openai.com.",
    )
    api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("POLYGLOT_JUDGE_API_KEY", "OPENAI_API_KEY", "api_key"),
        description="API key; never logged. May be unset for a keyless endpoint given by base_url.",
    )
    api_version: str | None = Field(
        None, description="Set for Azure OpenAI (e.g. 2024-06-01): base_url is then the Azure endpoint."
    )
    http_transport: Literal["auto", "aiohttp", "httpx"] = Field(
        "auto",
        description="HTTP transport of the openai client: aiohttp (`openai[aiohttp]`, about a third less CPU per "
        "request) or httpx; auto = aiohttp when installed.",
    )
    json_mode: bool = Field(
        True, description="Ask for response_format=json_object; turned off by itself if the endpoint rejects it."
    )
    temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="Sampling temperature (0: as deterministic as the API allows)."
    )
    seed: int = Field(0, description="Fixed sampling seed sent with every request.")
    max_tokens: int = Field(1024, gt=0, description="Completion token limit of a grading reply.")
    translate_max_tokens: int = Field(4096, gt=0, description="Completion token limit of a translation.")
    concurrency: int = Field(16, ge=1, description="Requests in flight at once, per provider, over all calls.")
    max_attempts: int = Field(6, ge=1, description="Attempts per request on 429 / 5xx / timeouts (1 = no retry).")
    backoff_initial: float = Field(
        1.0, ge=0, description="First back-off in seconds; doubles per attempt, plus jitter."
    )
    backoff_max: float = Field(60.0, ge=0, description="Longest back-off between attempts, in seconds.")
    max_retry_after: float = Field(
        120.0, ge=0, description="A server's Retry-After is honoured up to this many seconds."
    )
    request_timeout: float = Field(120.0, gt=0, description="Seconds before one HTTP request counts as timed out.")
    lid_address: str | None = Field(None, description="host:port of the lid service, for the language gate.")
    generator_address: str | None = Field(None, description="host:port of the generator, for provider `generator`.")
    generator_chat_format: str = Field(
        "### Human: {user} ### Assistant: {assistant}",
        description="How provider `generator` lays out a conversation turn (the study models' Guanaco format).",
    )
    store_uri: str | None = Field(None, description="Artifact store of the cache and usage; unset = the server's.")
    cache: bool = Field(True, description="Reuse earlier replies for identical requests (a rerun makes no calls).")
    cache_prefix: str = Field("judge", description="Key prefix of the judge's objects in the store.")
    template_dir: Path | None = Field(None, description="Directory of user templates, searched before the built-ins.")
    lid_batch_size: int = Field(256, gt=0, description="Texts per lid Identify call.")
    prices: dict[str, Price] = Field(
        default_factory=default_prices,
        description="Model name (or name prefix) -> USD per 1M tokens; JSON in POLYGLOT_JUDGE_PRICES.",
    )

    def secrets(self) -> list[str]:
        """Values that must never appear in a record or log line."""
        return [self.api_key.get_secret_value()] if self.api_key and self.api_key.get_secret_value() else []

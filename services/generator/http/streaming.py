"""`stream: true`: a finished response sent as OpenAI's server-sent events.

The engines decode whole completions (the core yields each completion when it is done), so there are no
per-token deltas to send: the response is computed as for `stream: false` (an error before that is the
usual JSON error with its status), then sent as the chunks OpenAI's streaming clients read: per choice one
chunk with its whole text (chat: a `delta` with the role and content, then one with `finish_reason`), a
usage chunk with no choices when `stream_options.include_usage` is set, and `data: [DONE]`. Clients that
insist on streaming (chat UIs, agents, the openai SDK's `stream=True`) work; the first byte comes when the
last choice is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi.responses import StreamingResponse

from services.generator.http.schema import ChatResponse, CompletionResponse

DONE = "data: [DONE]\n\n"


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def completion_events(response: CompletionResponse, include_usage: bool) -> Iterator[str]:
    head = {"id": response.id, "object": "text_completion", "created": response.created, "model": response.model}
    for choice in response.choices:
        yield _event({**head, "choices": [choice.model_dump()]})
    if include_usage:
        yield _event({**head, "choices": [], "usage": response.usage.model_dump()})
    yield DONE


def chat_events(response: ChatResponse, include_usage: bool) -> Iterator[str]:
    head = {"id": response.id, "object": "chat.completion.chunk", "created": response.created, "model": response.model}
    for choice in response.choices:
        delta = {"role": "assistant", "content": choice.message.content}
        yield _event({**head, "choices": [{"index": choice.index, "delta": delta, "logprobs": None,
                                           "finish_reason": None}]})  # fmt: skip
        yield _event({**head, "choices": [{"index": choice.index, "delta": {}, "logprobs": None,
                                           "finish_reason": choice.finish_reason}]})  # fmt: skip
    if include_usage:
        yield _event({**head, "choices": [], "usage": response.usage.model_dump()})
    yield DONE


def event_stream(events: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

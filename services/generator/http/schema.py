"""The OpenAI request and response bodies the front door speaks, as pydantic models (FastAPI validates and
documents them at `/docs`). Fields OpenAI defines but this server cannot honour are refused by name rather
than ignored; unknown fields are ignored, as OpenAI-compatible servers do (lm-eval sends extras)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.generator.structured import JsonSchema

TokenIds = list[Annotated[int, Field(ge=0)]]
Prompt = str | list[str] | TokenIds | list[TokenIds]
MAX_LOGPROBS = 1  # top-1 only: see tokens.py for why


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class Sampling(BaseModel):
    """The decoding fields both endpoints share (OpenAI's, plus vLLM's top_k and repetition_penalty)."""

    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = Field(1, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    stream: bool = False  # served as server-sent events once the completions are done (streaming.py)
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError("not supported")
        return value

    @field_validator("presence_penalty")
    @classmethod
    def _no_presence_penalty(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("not supported (use frequency_penalty or repetition_penalty)")
        return value

    def overrides(self, max_tokens: int | None) -> dict:
        """What `core.resolve_sampling` takes: the fields the client set (a preset's defaults stay otherwise)."""
        values = {
            name: getattr(self, name)
            for name in ("temperature", "top_p", "top_k", "frequency_penalty", "repetition_penalty", "seed")
            if getattr(self, name) is not None
        }
        if max_tokens:
            values["max_tokens"] = max_tokens
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if stops:
            values["stop"] = stops
        return values


class CompletionRequest(Sampling):
    prompt: Prompt
    max_tokens: int | None = Field(16, ge=0, description="0 with echo: score the prompt only.")
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("not supported")
        return value

    def prompts(self) -> list[str] | list[list[int]]:
        """The prompt as a list: of strings, or of token-id lists."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [p]  # type: ignore[list-item]
        return p  # type: ignore[return-value]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class JsonSchemaFormat(BaseModel):
    name: str = ""
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """`text`; `json_object` (any JSON object); `json_schema` (the core's structured output, as gRPC's)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def constraint(self) -> JsonSchema | None:
        if self.type == "json_object":
            return JsonSchema({"type": "object"})
        if self.type == "json_schema":
            if self.json_schema is None:
                raise ValueError("json_schema: required when type is json_schema")
            return JsonSchema(self.json_schema.schema_)
        return None


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    response_format: ResponseFormat | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool) -> bool:
        if value:
            raise ValueError("not supported on chat completions (use /v1/completions with echo and logprobs)")
        return value


# -- responses ---------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Logprobs(BaseModel):
    """Per token: its text, log-probability (None for the first prompt token), top alternatives and offset."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: Logprobs | None = None
    finish_reason: str | None


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str | None


class ChatResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "polyglot"
    root: str
    parent: str | None = None
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody

"""The FastAPI app of the OpenAI-compatible front door, around one `core.Generator`.

    from services.generator.http.app import create_app
    app = create_app(generator)        # served by `serve.FrontDoor` beside gRPC, on the same event loop

`model` is the base model's name (as `/v1/models` lists it) or `<base>:<adapter>`, the adapter being a
loaded adapter's name or an artifact URI loaded on first use (as gRPC `adapter` is). Text prompts without
echo or logprobs take the core's own `generate` (the gRPC `Generate` path); token-id prompts, `echo` and
`logprobs` take `tokens.py`, on the same engine and batching.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.common.auth import Authenticator
from services.common.errors import InvalidArgument, NotFound, PolyglotError
from services.common.presets import GUANACO_STOPS, SamplingParams
from services.generator.core import GenerateOutcome, Generator, resolve_sampling
from services.generator.engine import decode_continuation, encode
from services.generator.http import errors, streaming
from services.generator.http.chat import guanaco_prompt
from services.generator.http.metrics import RequestMetrics
from services.generator.http.schema import (
    AssistantMessage,
    ChatChoice,
    ChatRequest,
    ChatResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Logprobs,
    ModelCard,
    ModelList,
    Usage,
)
from services.generator.http.tokens import TokenChoice, complete_ids, require_engine, token_texts
from services.generator.structured import Structured

log = logging.getLogger("polyglot.generator.http")


async def authorize(request: Request) -> None:
    """Every /v1 route depends on this: the gRPC port's bearer tokens and rules (`services.common.auth`), the
    method being `/openai<path>`, e.g. `/openai/v1/completions`; `Unauthenticated` is 401, `PermissionDenied`
    403. The OpenAI client's `api_key` is sent as the bearer token. A client certificate (`tls_client_ca`) is
    checked by TLS but names no identity here, so a server with only that refuses HTTP callers (fail closed)."""
    authenticator = request.app.state.authenticator
    if authenticator is not None:
        authenticator.http_identity(request.headers.get("authorization"), f"/openai{request.url.path}")


def adapter_of(generator: Generator, model: str) -> str:
    """`model` → the core's adapter reference ("" is the base model)."""
    base = require_engine(generator).info.model
    if model == base:
        return ""
    if model.startswith(f"{base}:") and len(model) > len(base) + 1:
        return model[len(base) + 1 :]
    raise NotFound(f"model {model!r} is not served here: use {base!r} or '{base}:<adapter name or URI>'", field="model")


def create_app(generator: Generator, authenticator: Authenticator | None = None) -> FastAPI:
    """`authenticator` None: every caller is served (the server checks nobody, as its gRPC port)."""
    app = FastAPI(title="Polyglot generator (OpenAI-compatible)", version="1")
    app.state.authenticator = authenticator
    app.add_exception_handler(RequestValidationError, errors.validation_handler)
    app.add_exception_handler(PolyglotError, _domain)  # e.g. from `authorize`; routes name their params
    app.add_exception_handler(Exception, _unexpected)
    router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @router.get("/models", response_model=ModelList)
    async def models():
        entries = generator.list_models()
        base = next((m.name for m in entries if m.kind == "base"), "")
        return ModelList(
            data=[
                ModelCard(id=m.name, root=m.name, max_model_len=m.max_context)
                if m.kind == "base"
                else ModelCard(id=f"{base}:{m.name}", root=m.uri, parent=base, max_model_len=m.max_context)
                for m in entries
            ]
        )

    @router.post("/completions", response_model=CompletionResponse)
    async def completions(body: CompletionRequest):
        prompts = body.prompts()
        try:
            response = await _completions(generator, body, prompts)
        except PolyglotError as exc:
            return errors.from_domain(exc, errors.openai_param(exc.field, single_prompt=len(prompts) == 1))
        if body.stream:
            return streaming.event_stream(streaming.completion_events(response, body.include_usage))
        return response

    @router.post("/chat/completions", response_model=ChatResponse)
    async def chat_completions(body: ChatRequest):
        try:
            response = await _chat(generator, body)
        except PolyglotError as exc:
            return errors.from_domain(exc, errors.openai_param(exc.field, chat=True))
        if body.stream:
            return streaming.event_stream(streaming.chat_events(response, body.include_usage))
        return response

    app.include_router(router)
    app.add_middleware(RequestMetrics)
    return app


async def _domain(request: Request, exc: PolyglotError) -> JSONResponse:
    return errors.from_domain(exc, errors.openai_param(exc.field))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    # As the gRPC port answers: the kind of error, and the details in the server log only.
    return errors.error_response(
        500, f"internal error ({type(exc).__name__}); see the server log", param=None, code="internal"
    )


# -- /v1/completions ----------------------------------------------------------------------------------------


async def _completions(generator: Generator, body: CompletionRequest, prompts: list) -> CompletionResponse:
    adapter = adapter_of(generator, body.model)
    if not prompts:
        raise InvalidArgument("at least one prompt is required", field="prompt")
    if body.best_of not in (None, body.n):
        raise InvalidArgument("only best_of = n is supported", field="best_of")
    if body.max_tokens == 0 and not body.echo:
        raise InvalidArgument("0 needs echo=true (scoring the prompt)", field="max_tokens")
    sampling = None if body.max_tokens == 0 else resolve_sampling("", body.overrides(body.max_tokens))
    texts = isinstance(prompts[0], str)
    if texts and sampling is not None and not body.echo and body.logprobs is None:
        outcomes = await _core_generate(generator, prompts, sampling, adapter, body.n)
        choices = [CompletionChoice(index=i, text=o.text, finish_reason=o.finish_reason) for i, o in outcomes]
        prompt_tokens = sum(o.prompt_tokens for i, o in outcomes if i % body.n == 0)
        return CompletionResponse(model=body.model, choices=choices, usage=_usage(prompt_tokens, outcomes))
    engine = require_engine(generator)
    if texts:
        for i, text in enumerate(prompts):
            if not text:
                raise InvalidArgument("empty prompt", field=f"prompt[{i}]")
        ids = await asyncio.to_thread(lambda: [encode(engine.tokenizer, text) for text in prompts])
    else:
        ids = prompts
    runs = await complete_ids(generator, adapter, ids, sampling, n=body.n, logprobs=body.logprobs, echo=body.echo)
    choices = await asyncio.to_thread(_token_choices, engine.tokenizer, runs, prompts, body)
    prompt_tokens = sum(len(r.prompt_ids) for k, r in enumerate(runs) if k % body.n == 0)
    completion_tokens = sum(len(r.completion_ids) for r in runs)
    usage = Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    return CompletionResponse(model=body.model, choices=choices, usage=usage)


def _token_choices(
    tokenizer, runs: list[TokenChoice], prompts: list, body: CompletionRequest
) -> list[CompletionChoice]:
    choices = []
    for k, run in enumerate(runs):
        given = prompts[run.prompt_index]
        prompt_text = given if isinstance(given, str) else tokenizer.decode(run.prompt_ids, skip_special_tokens=True)
        text = (prompt_text if body.echo else "") + run.text
        logprobs = None if body.logprobs is None else _logprobs(tokenizer, run, body.echo, body.logprobs)
        choices.append(CompletionChoice(index=k, text=text, logprobs=logprobs, finish_reason=run.finish_reason))
    return choices


def _logprobs(tokenizer, run: TokenChoice, echo: bool, top: int) -> Logprobs:
    ids = run.ids
    first = 0 if echo else len(run.prompt_ids)
    texts = token_texts(tokenizer, ids)
    special = set(tokenizer.all_special_ids)
    offsets, at = [], 0
    for i in range(first, len(ids)):
        offsets.append(at)
        at += 0 if ids[i] in special else len(texts[i])
    top_logprobs: list[dict[str, float] | None] = []
    for i in range(first, len(ids)):
        p = run.positions[i]
        if p is None or top == 0:
            top_logprobs.append(None)
            continue
        alternatives = {texts[i]: p.logprob}
        if p.top_id != ids[i]:
            alternatives[decode_continuation(tokenizer, ids[:i], [p.top_id])] = p.top_logprob
        top_logprobs.append(alternatives)
    return Logprobs(
        tokens=texts[first:],
        token_logprobs=[p.logprob if p else None for p in run.positions[first:]],
        top_logprobs=top_logprobs,
        text_offset=offsets,
    )


async def _core_generate(
    generator: Generator,
    prompts: list[str],
    sampling: SamplingParams,
    adapter: str,
    n: int,
    structured: Structured | None = None,
) -> list[tuple[int, GenerateOutcome]]:
    """The core's `generate` (the gRPC Generate path), n choices per prompt numbered prompt-major; choice j
    samples with seed + j. A failed item fails the request: OpenAI has no per-item errors."""

    async def one(j: int) -> list[tuple[int, GenerateOutcome]]:
        params = sampling if sampling.seed is None or j == 0 else sampling.with_seed(sampling.seed + j)
        out = []
        async for outcome in generator.generate(prompts, params, adapter=adapter, structured=structured):
            if outcome.error:
                raise outcome.error
            out.append((outcome.index * n + j, outcome))
        return out

    results = await asyncio.gather(*(one(j) for j in range(n)))
    return sorted((pair for result in results for pair in result), key=lambda pair: pair[0])


def _usage(prompt_tokens: int, outcomes: list[tuple[int, GenerateOutcome]]) -> Usage:
    completion = sum(o.completion_tokens for _, o in outcomes)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion)


# -- /v1/chat/completions -----------------------------------------------------------------------------------


async def _chat(generator: Generator, body: ChatRequest) -> ChatResponse:
    adapter = adapter_of(generator, body.model)
    prompt = guanaco_prompt([(m.role, m.text()) for m in body.messages])
    overrides = body.overrides(body.max_completion_tokens or body.max_tokens)
    # The role markers end the reply, so the model never writes the user's next turn.
    overrides["stop"] = [*overrides.get("stop", []), *(s for s in GUANACO_STOPS if s not in overrides.get("stop", []))]
    sampling = resolve_sampling("", overrides)
    try:
        structured = body.response_format.constraint() if body.response_format else None
    except ValueError as exc:
        raise InvalidArgument(str(exc), field="response_format") from None
    outcomes = await _core_generate(generator, [prompt], sampling, adapter, body.n, structured)
    choices = [
        ChatChoice(index=i, message=AssistantMessage(content=o.text.strip()), finish_reason=o.finish_reason)
        for i, o in outcomes
    ]
    return ChatResponse(model=body.model, choices=choices, usage=_usage(outcomes[0][1].prompt_tokens, outcomes))

"""Judge providers: who answers a chat request. Registered by name (`openai`, `generator`).

A provider sends one chat request (`_complete`) and sorts failures into transient ones (HTTP 429, 5xx,
timeouts, a dropped connection: `TransientError`, an `Unavailable`, retried as every `errors.TRANSIENT`
is) and permanent ones (`ProviderError`, e.g. a rejected key, an unknown model: the item fails at once).
`Provider.complete` adds what every provider shares: a bound on requests in flight (one semaphore per
provider, over all calls of the process), and retries with exponential back-off and jitter that wait at
least as long as a server's Retry-After asks. The `openai` client's own retries are off (`max_retries=0`)
so that every HTTP request is counted here.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from services.common.errors import TRANSIENT, FailedPrecondition, InvalidArgument, PolyglotError, Unavailable
from services.common.registry import Registry
from services.judge.limits import estimate_tokens
from services.judge.settings import JudgeSettings
from services.judge.usage import Meter

log = logging.getLogger("polyglot.judge.providers")

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": ...}


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TransientError(Unavailable):
    """Worth retrying; `retry_after` is the server's own hint in seconds, if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ProviderError(PolyglotError):
    """A request that will not succeed by repeating it; `code` is the gRPC status name to report."""

    def __init__(self, message: str, code: str = "INTERNAL"):
        super().__init__(message, code=code)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced; error bodies can echo a (partly masked) API key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            if len(secret) > 8:  # OpenAI echoes `sk-abc…xyz`-style fragments; cut those too
                text = text.replace(secret[-4:], "***")
    return text


def parse_retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), as RFC 9110 allows."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Provider(ABC):
    """One configured backend. Subclasses implement `_complete` (a single request, no retry)."""

    name = ""
    # What else decides this provider's replies besides the model, prompt and sampling settings (a decoding
    # constraint, a token cap): part of the reply cache's key, so a change there is not served old replies.
    # Empty for providers whose requests are only those; their cache keys are unchanged.
    reply_shape: dict[str, str] = {}

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self.semaphore = asyncio.Semaphore(settings.concurrency)

    @abstractmethod
    async def _complete(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        """Send one request; `meter.sent()` just before it goes out, `meter.tokens(...)` for a reply."""

    async def aclose(self) -> None:
        return None

    def _wait(self, state: RetryCallState) -> float:
        s = self.settings
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # The server knows when it will take requests again: wait that long (capped), plus a little
            # jitter so that requests it turned away together do not come back together.
            wait = min(retry_after, s.max_retry_after)
            return wait + random.uniform(0, min(1.0, 0.1 * wait + 0.05))
        backoff = min(s.backoff_max, s.backoff_initial * 2 ** (state.attempt_number - 1))
        return backoff + random.uniform(0, backoff)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            json.dumps(
                {
                    "event": "judge_retry",
                    "provider": self.name,
                    "reason": getattr(exc, "reason", type(exc).__name__),
                    "attempt": state.attempt_number,
                    "max_attempts": self.settings.max_attempts,
                    "wait_s": round(wait, 3),
                }
            )
        )

    async def complete(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        """One chat completion, retried on transient failures; raises TransientError once attempts run out.
        Its worst-case cost is held against the run's budget meanwhile (ResourceExhausted: not sent)."""
        with meter.reserve(model, estimate_tokens(m["content"] for m in messages), max_tokens):
            return await self._complete_retried(messages, model=model, json_mode=json_mode, max_tokens=max_tokens,
                                                meter=meter)  # fmt: skip

    async def _complete_retried(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TRANSIENT),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self.semaphore:
                    return await self._complete(
                        messages, model=model, json_mode=json_mode, max_tokens=max_tokens, meter=meter
                    )
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


PROVIDERS: Registry[type[Provider]] = Registry("provider", base=Provider)
# gRPC lives at the edge, not in the core package: the generator provider is imported when chosen.
PROVIDERS.register_lazy("generator", "services.judge.generator_provider:GeneratorProvider")

_RETRY_STATUS = {408, 409, 425, 429}
_STATUS_CODES = {400: "INVALID_ARGUMENT", 401: "PERMISSION_DENIED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


@PROVIDERS.register("openai")
class OpenAIProvider(Provider):
    """Any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM's server, ...) through `openai`."""

    name = "openai"

    def __init__(self, settings: JudgeSettings):
        super().__init__(settings)
        import openai

        self._openai = openai
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if not key:
            if not settings.base_url:
                raise FailedPrecondition(
                    "provider openai has no API key: set OPENAI_API_KEY or POLYGLOT_JUDGE_API_KEY", field="api_key"
                )
            key = "EMPTY"  # a keyless endpoint (vLLM) still wants the header; `EMPTY` is vLLM's convention
        common = {"api_key": key, "max_retries": 0, "timeout": settings.request_timeout}
        http_client = _http_client(openai, settings)
        if http_client is not None:
            common["http_client"] = http_client
        if settings.api_version:
            if not settings.base_url:
                raise FailedPrecondition("Azure OpenAI (api_version set) needs base_url", field="base_url")
            self.client = openai.AsyncAzureOpenAI(
                azure_endpoint=settings.base_url, api_version=settings.api_version, **common
            )
        else:
            self.client = openai.AsyncOpenAI(base_url=settings.base_url, **common)
        self._json_mode_supported = settings.json_mode
        self._secrets = settings.secrets()

    async def aclose(self) -> None:
        await self.client.close()

    async def _complete(
        self, messages: list[Message], *, model: str, json_mode: bool, max_tokens: int, meter: Meter
    ) -> Completion:
        openai = self._openai
        use_json = json_mode and self._json_mode_supported
        kwargs = {
            "model": model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
            "max_tokens": max_tokens,
        }
        if use_json:
            kwargs["response_format"] = {"type": "json_object"}
        meter.sent()
        try:
            response = await self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            status = exc.status_code
            detail = redact(_error_message(exc), self._secrets)
            if status in _RETRY_STATUS or status >= 500:
                raise TransientError(f"HTTP {status}", parse_retry_after(exc.response.headers)) from None
            if status == 400 and use_json and "response_format" in detail.lower():
                # An endpoint without JSON mode: say so once, then ask in the prompt alone (the rubric
                # already demands JSON, and the parser checks it).
                self._json_mode_supported = False
                log.warning(json.dumps({"event": "judge_json_mode_off", "provider": self.name, "model": model}))
                return await self._complete(messages, model=model, json_mode=False, max_tokens=max_tokens, meter=meter)
            raise ProviderError(
                f"HTTP {status} from {self.name}: {detail}", _STATUS_CODES.get(status, "INTERNAL")
            ) from None
        except openai.APITimeoutError:
            raise TransientError("timeout") from None
        except openai.APIConnectionError:
            raise TransientError("connection error") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError):
            # A 200 whose body is not a chat completion: a proxy hiccup, try again.
            raise TransientError("malformed HTTP response body") from None
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        meter.tokens(model, prompt_tokens, completion_tokens)
        if not response.choices:
            raise TransientError("reply without choices")
        return Completion(response.choices[0].message.content or "", prompt_tokens, completion_tokens)


def _http_client(openai, settings: JudgeSettings):
    """The openai client's aiohttp transport when wanted and installed; None = its default (httpx)."""
    if settings.http_transport == "httpx":
        return None
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        if settings.http_transport == "aiohttp":
            raise FailedPrecondition(
                "http_transport aiohttp needs the aiohttp package (pip install 'openai[aiohttp]')",
                field="http_transport",
            ) from None
        return None
    return openai.DefaultAioHttpClient(timeout=settings.request_timeout)


def _error_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"][:500]
    return str(getattr(exc, "message", exc))[:500]


class ProviderPool:
    """One instance per provider name per process, built on first use (so a missing key fails the first
    call that needs it, naming the setting, rather than the server's start)."""

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self._instances: dict[str, Provider] = {}

    def get(self, name: str, field: str = "provider") -> Provider:
        if name not in self._instances:
            try:
                cls = PROVIDERS.get(name)
            except InvalidArgument as exc:
                raise InvalidArgument(exc.message, field=field) from None
            self._instances[name] = cls(self.settings)
        return self._instances[name]

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()

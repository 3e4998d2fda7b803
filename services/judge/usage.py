"""The token and cost account: per call and per run (`run_id`), priced from the configured table.

Every HTTP request counts, failed attempts and repair requests included: that is what a provider bills
and what rate limits see. Items answered from the cache count under `cached` and cost nothing. A run's
account is kept in memory and written to the artifact store after each call, so `GetUsage` still answers
after a restart.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass

from services.common.errors import InvalidArgument, NotFound
from services.common.store import ArtifactStore
from services.judge.settings import Price

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_RUN = "default"


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached += other.cached
        self.cost_usd += other.cost_usd


def check_run_id(run_id: str, field: str = "run_id") -> str:
    """`''` is the default run; anything else must be a short slug (it becomes a store key)."""
    if not run_id:
        return DEFAULT_RUN
    if not _RUN_ID.match(run_id):
        raise InvalidArgument(f"{run_id!r}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)", field=field)
    return run_id


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        # Longest prefix first, so `gpt-4o-mini-2024-07-18` is priced as gpt-4o-mini, not gpt-4o.
        self._prices = sorted(prices.items(), key=lambda kv: len(kv[0]), reverse=True)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        for prefix, price in self._prices:
            if model.startswith(prefix):
                return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
        return 0.0  # a self-hosted model: no list price


class Meter:
    """One call's account; every increment also lands on its run's account."""

    def __init__(self, book: UsageBook, run_id: str, call: Usage | None = None):
        self.book = book
        self.run_id = run_id
        self.call = call if call is not None else Usage()

    def _apply(self, delta: Usage) -> None:
        self.call.add(delta)
        self.book.run(self.run_id).add(delta)

    def sent(self) -> None:
        """One request went out (counted when sent: a cancelled or failed request may still be billed)."""
        self._apply(Usage(requests=1))

    def tokens(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """The token counts a reply reported, priced for `model`."""
        cost = self.book.prices.cost(model, prompt_tokens, completion_tokens)
        self._apply(Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost))

    def cached(self) -> None:
        self._apply(Usage(cached=1))


class UsageBook:
    def __init__(self, prices: dict[str, Price], store: ArtifactStore | None = None, prefix: str = "judge"):
        self.prices = PriceTable(prices)
        self.store = store
        self.prefix = prefix
        self._runs: dict[str, Usage] = {}

    def run(self, run_id: str) -> Usage:
        return self._runs.setdefault(run_id, Usage())

    def meter(self, run_id: str, call: Usage | None = None) -> Meter:
        self.run(run_id)
        return Meter(self, run_id, call)

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}/usage/{run_id}.json"

    async def load(self, run_id: str) -> None:
        """Adopt a persisted account (from an earlier process) before this process adds to it."""
        if run_id in self._runs or self.store is None:
            return
        try:
            data = await asyncio.to_thread(self.store.get_json, self._key(run_id))
        except NotFound:
            return
        self._runs.setdefault(run_id, Usage(**data["usage"]))

    async def save(self, run_id: str) -> None:
        if self.store is not None:
            usage = asdict(self.run(run_id))
            await asyncio.to_thread(self.store.put_json, self._key(run_id), {"run_id": run_id, "usage": usage})

    async def get(self, run_id: str) -> Usage:
        await self.load(run_id)
        if run_id not in self._runs:
            raise NotFound(f"no judge usage recorded for run {run_id!r}", field="run_id")
        return self._runs[run_id]

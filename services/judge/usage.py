"""The token and cost account: per call and per run (`run_id`), priced from the configured table.

Every HTTP request counts, failed attempts and repair requests included: that is what a provider bills
and what rate limits see. Items answered from the cache count under `cached` and cost nothing. A run's
account is kept in memory and written to the artifact store after each call, so `GetUsage` still answers
after a restart, and a restart does not reset what a run has spent against its budget.

Budgets (issue 19, row 3): each run has a spend limit in USD (`budget_usd`, or `budgets[run_id]`). Before a
request is sent, its worst case (the estimated prompt and the full `max_tokens` reply, at the model's
price) is reserved against the run's budget; a request that could pass it is not sent and raises
RESOURCE_EXHAUSTED naming the budget and the run. A reply's real cost replaces its reservation.

A caller names its own run ids, so per-run budgets alone do not bound what the service spends: the whole
service has an account too (every run's spend, persisted as `<prefix>/usage/_service.json`, a name no
run id can take), held against `total_budget_usd` in the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from services.common.errors import InvalidArgument, NotFound, PolyglotError, ResourceExhausted
from services.common.store import ArtifactStore
from services.judge.settings import Price
from services.judge.storage import store_call

log = logging.getLogger("polyglot.judge.usage")

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_RUN = "default"
SERVICE_ACCOUNT = "_service"  # the whole service's account: run ids cannot start with "_"


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
        self.book.total.add(delta)

    def sent(self) -> None:
        """One request went out (counted when sent: a cancelled or failed request may still be billed)."""
        self._apply(Usage(requests=1))

    def tokens(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """The token counts a reply reported, priced for `model`."""
        cost = self.book.prices.cost(model, prompt_tokens, completion_tokens)
        self._apply(Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost))

    def cached(self) -> None:
        self._apply(Usage(cached=1))

    @contextmanager
    def reserve(self, model: str, prompt_tokens: int, max_tokens: int) -> Iterator[None]:
        """Hold a request's worst-case cost against the run's budget while it is in flight."""
        cost = self.book.prices.cost(model, prompt_tokens, max_tokens)
        self.book.reserve(self.run_id, cost)
        try:
            yield
        finally:
            self.book.release(self.run_id, cost)


class UsageBook:
    def __init__(
        self,
        prices: dict[str, Price],
        store: ArtifactStore | None = None,
        prefix: str = "judge",
        *,
        budget_usd: float | None = None,
        budgets: dict[str, float] | None = None,
        total_budget_usd: float | None = None,
        attempts: int = 3,
    ):
        self.prices = PriceTable(prices)
        self.store = store
        self.prefix = prefix
        self.budget_usd = budget_usd
        self.budgets = budgets or {}
        self.total_budget_usd = total_budget_usd
        self.attempts = attempts
        self._runs: dict[str, Usage] = {}
        self._reserved: dict[str, float] = {}
        self.total = Usage()  # every run's spend, this process's and (once loaded) earlier ones'
        self._total_loaded = False
        self._total_reserved = 0.0

    def budget(self, run_id: str) -> tuple[str, float | None]:
        """(the setting that limits the run, its USD limit or None)."""
        if run_id in self.budgets:
            return f"budgets[{run_id!r}]", self.budgets[run_id]
        return "budget_usd", self.budget_usd

    def reserve(self, run_id: str, cost: float) -> None:
        name, limit = self.budget(run_id)
        spent, held = self.run(run_id).cost_usd, self._reserved.get(run_id, 0.0)
        if limit is not None and spent + held + cost > limit:
            raise ResourceExhausted(
                f"run {run_id!r} is at its judge budget {name} of ${limit:.2f}: ${spent:.4f} spent, ${held:.4f} "
                f"in flight, and the next request could cost ${cost:.4f}; not sent (raise {name} to go on; "
                "replies already paid for are cached and cost nothing)",
                field="run_id",
            )
        limit = self.total_budget_usd
        spent, held = self.total.cost_usd, self._total_reserved
        if limit is not None and spent + held + cost > limit:
            raise ResourceExhausted(
                f"the judge service is at its total budget total_budget_usd of ${limit:.2f} (all runs together): "
                f"${spent:.4f} spent, ${held:.4f} in flight, and the next request could cost ${cost:.4f}; not sent "
                "(the operator raises total_budget_usd to go on)"
            )
        self._reserved[run_id] = self._reserved.get(run_id, 0.0) + cost
        self._total_reserved = held + cost

    def release(self, run_id: str, cost: float) -> None:
        self._reserved[run_id] = max(0.0, self._reserved.get(run_id, 0.0) - cost)
        self._total_reserved = max(0.0, self._total_reserved - cost)

    def run(self, run_id: str) -> Usage:
        return self._runs.setdefault(run_id, Usage())

    def meter(self, run_id: str, call: Usage | None = None) -> Meter:
        self.run(run_id)
        return Meter(self, run_id, call)

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}/usage/{run_id}.json"

    async def _load_total(self) -> None:
        if self._total_loaded or self.store is None:
            return
        try:
            data = await store_call(
                self.store.get_json, self._key(SERVICE_ACCOUNT), what="read the judge service's usage",
                attempts=self.attempts,
            )  # fmt: skip
            earlier = Usage(**data["usage"])
        except NotFound:
            earlier = Usage()
        if not self._total_loaded:  # another call may have loaded it while this one waited
            earlier.add(self.total)
            self.total, self._total_loaded = earlier, True

    async def load(self, run_id: str) -> None:
        """Adopt a persisted account (from an earlier process) before this process adds to it; the service's
        account too, on the first call."""
        await self._load_total()
        if run_id in self._runs or self.store is None:
            return
        try:  # a store that fails here fails the call (UNAVAILABLE): the budget cannot be checked without it
            data = await store_call(
                self.store.get_json, self._key(run_id), what=f"read the usage of run {run_id!r}", attempts=self.attempts
            )
        except NotFound:
            return
        self._runs.setdefault(run_id, Usage(**data["usage"]))

    async def save(self, run_id: str) -> None:
        """Persist the run's account; a failing store is logged, not raised: the account stays in memory and
        the next call's save writes it whole."""
        if self.store is None:
            return
        for account, usage in ((run_id, self.run(run_id)), (SERVICE_ACCOUNT, self.total)):
            try:
                await store_call(
                    self.store.put_json, self._key(account), {"run_id": account, "usage": asdict(usage)},
                    what=f"save the usage of {account!r}", attempts=self.attempts,
                )  # fmt: skip
            except PolyglotError as exc:
                log.error("could not save the usage of %s (kept in memory): %s", account, exc)

    async def get(self, run_id: str) -> Usage:
        await self.load(run_id)
        if run_id not in self._runs:
            raise NotFound(f"no judge usage recorded for run {run_id!r}", field="run_id")
        return self._runs[run_id]

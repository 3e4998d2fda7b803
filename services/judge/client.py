"""Typed clients of the judge service; return the dataclasses of `services.judge.records`, never protobufs.

with JudgeClient("127.0.0.1:50053") as judge:
    graded = judge.grade([GradeItem(prompt, reply, "de")], run_id="study1")
    graded.records[0].score, graded.records[0].outcome          # 1, Outcome.LANGUAGE_MISMATCH
    judge.translate(["Hello"], target_language="de").records[0].text
    judge.usage("study1").cost_usd

`AsyncJudgeClient` is the asyncio twin; both build requests and read replies with the functions here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from polyglot.v1 import common_pb2, judge_pb2, judge_pb2_grpc

from services.common.client import AsyncServiceClient, ServiceClient
from services.common.messages import from_message, to_message
from services.common.status import item_error
from services.judge.records import Graded, GradeItem, GradeRecord, Outcome, Translated, TranslationRecord
from services.judge.usage import Usage

_OUTCOMES = {judge_pb2.GradeOutcome.Value(f"GRADE_OUTCOME_{o.value}"): o for o in Outcome}


def _usage(message: common_pb2.Usage) -> Usage:
    return from_message(Usage, message)


def _record(result: judge_pb2.GradeResult) -> GradeRecord:
    error = item_error(result.status)
    return from_message(
        GradeRecord,
        result,
        outcome=_OUTCOMES.get(result.outcome, Outcome.ERROR),
        note=result.note or ("" if error else result.status.message),  # older servers: only the latter
        error=error,
    )


def grade_request(
    items: Sequence[GradeItem],
    *,
    provider: str = "",
    model: str = "",
    template: str = "",
    translate_first: bool = False,
    run_id: str = "",
) -> judge_pb2.GradeRequest:
    return judge_pb2.GradeRequest(
        items=[
            to_message(judge_pb2.GradeItem, item)
            for item in items
        ],
        judge=judge_pb2.JudgeModel(provider=provider, model=model),
        template=template,
        translate_first=translate_first,
        run_id=run_id,
    )


def graded(response: judge_pb2.GradeResponse) -> Graded:
    return Graded([_record(r) for r in response.results], _usage(response.usage))


def translate_request(
    texts: Sequence[str],
    *,
    target_language: str,
    source_language: str = "",
    provider: str = "",
    model: str = "",
    run_id: str = "",
) -> judge_pb2.TranslateRequest:
    return judge_pb2.TranslateRequest(
        texts=list(texts),
        source_language=source_language,
        target_language=target_language,
        model=judge_pb2.JudgeModel(provider=provider, model=model),
        run_id=run_id,
    )


def translated(response: judge_pb2.TranslateResponse) -> Translated:
    records = [
        TranslationRecord(r.index, r.text, cached=r.cached, error=item_error(r.status)) for r in response.results
    ]
    return Translated(records, _usage(response.usage))


class JudgeClient(ServiceClient):
    """Client of `polyglot.v1.JudgeService`. Bad input raises InvalidArgument naming the field, as in-process.

    Keyword arguments of `grade`/`grade_stream` and `translate` are those of `grade_request` and
    `translate_request`.
    """

    stub_class = judge_pb2_grpc.JudgeServiceStub

    def grade(self, items: Sequence[GradeItem], *, timeout: float | None = None, **options) -> Graded:
        """Records in item order, with the call's usage. Retried as a whole on UNAVAILABLE: the cache
        makes a retry cheap (finished items are not asked again)."""
        return graded(self.call("Grade", grade_request(items, **options), timeout=timeout))

    def grade_stream(
        self, items: Sequence[GradeItem], *, timeout: float | None = None, **options
    ) -> Iterator[GradeRecord]:
        """Records as items finish (any order; use `.index`)."""
        for result in self.stream("GradeStream", grade_request(items, **options), timeout=timeout):
            yield _record(result)

    def translate(self, texts: Sequence[str], *, timeout: float | None = None, **options) -> Translated:
        return translated(self.call("Translate", translate_request(texts, **options), timeout=timeout))

    def usage(self, run_id: str = "", *, timeout: float | None = None) -> Usage:
        return _usage(self.call("GetUsage", judge_pb2.GetUsageRequest(run_id=run_id), timeout=timeout))


class AsyncJudgeClient(AsyncServiceClient):
    """`JudgeClient` for asyncio."""

    stub_class = judge_pb2_grpc.JudgeServiceStub

    async def grade(self, items: Sequence[GradeItem], *, timeout: float | None = None, **options) -> Graded:
        return graded(await self.call("Grade", grade_request(items, **options), timeout=timeout))

    async def grade_stream(
        self, items: Sequence[GradeItem], *, timeout: float | None = None, **options
    ) -> AsyncIterator[GradeRecord]:
        async for result in self.stream("GradeStream", grade_request(items, **options), timeout=timeout):
            yield _record(result)

    async def translate(self, texts: Sequence[str], *, timeout: float | None = None, **options) -> Translated:
        return translated(await self.call("Translate", translate_request(texts, **options), timeout=timeout))

    async def usage(self, run_id: str = "", *, timeout: float | None = None) -> Usage:
        return _usage(await self.call("GetUsage", judge_pb2.GetUsageRequest(run_id=run_id), timeout=timeout))

"""gRPC face of the judge: `GradeRequest` → `GradeJob`, records → `GradeResult`, usage → `Usage`.

Domain errors raised by the core (InvalidArgument naming `items[3].response`, ...) travel untouched to the
shared runtime's interceptor, which maps them to status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from polyglot.v1 import common_pb2, judge_pb2, judge_pb2_grpc

from services.judge.core import Judge
from services.judge.records import GradeItem, GradeJob, GradeRecord, ItemError, Outcome, TranslationRecord
from services.judge.translation import TranslateJob
from services.judge.usage import Usage

_CODES = {code.name: code.value[0] for code in grpc.StatusCode}
_OUTCOMES = {outcome: judge_pb2.GradeOutcome.Value(f"GRADE_OUTCOME_{outcome.value}") for outcome in Outcome}


def _status(error: ItemError | None, note: str = "") -> common_pb2.ItemStatus:
    if error is None:
        return common_pb2.ItemStatus(code=0, message=note)
    return common_pb2.ItemStatus(
        code=_CODES.get(error.code, _CODES["INTERNAL"]), message=error.message, field=error.field or ""
    )


def usage_message(usage: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        requests=usage.requests,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached=usage.cached,
        cost_usd=usage.cost_usd,
    )


def grade_result(record: GradeRecord) -> judge_pb2.GradeResult:
    return judge_pb2.GradeResult(
        index=record.index,
        id=record.id,
        score=record.score,
        reasoning=record.reasoning,
        raw_reply=record.raw_reply,
        outcome=_OUTCOMES[record.outcome],
        detected_language=record.detected_language,
        cached=record.cached,
        status=_status(record.error, record.note),
    )


def translation(record: TranslationRecord) -> judge_pb2.Translation:
    return judge_pb2.Translation(
        index=record.index, text=record.text, cached=record.cached, status=_status(record.error)
    )


def grade_job(request: judge_pb2.GradeRequest) -> GradeJob:
    items = [
        GradeItem(
            prompt=item.prompt,
            response=item.response,
            target_language=item.target_language,
            id=item.id,
            response_language=item.response_language,
        )
        for item in request.items
    ]
    return GradeJob(
        items=items,
        provider=request.judge.provider,
        model=request.judge.model,
        template=request.template,
        translate_first=request.translate_first,
        run_id=request.run_id,
    )


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    def __init__(self, judge: Judge):
        self.judge = judge

    async def Grade(self, request, context) -> judge_pb2.GradeResponse:
        graded = await self.judge.grade(grade_job(request))
        return judge_pb2.GradeResponse(
            results=[grade_result(r) for r in graded.records], usage=usage_message(graded.usage)
        )

    async def GradeStream(self, request, context) -> AsyncIterator[judge_pb2.GradeResult]:
        stream = self.judge.grade_stream(grade_job(request))
        try:
            async for record in stream:
                yield grade_result(record)
        finally:
            await stream.aclose()

    async def Translate(self, request, context) -> judge_pb2.TranslateResponse:
        job = TranslateJob(
            texts=list(request.texts),
            target_language=request.target_language,
            source_language=request.source_language,
            provider=request.model.provider,
            model=request.model.model,
            run_id=request.run_id,
        )
        translated = await self.judge.translate(job)
        return judge_pb2.TranslateResponse(
            results=[translation(r) for r in translated.records], usage=usage_message(translated.usage)
        )

    async def GetUsage(self, request, context) -> common_pb2.Usage:
        return usage_message(await self.judge.get_usage(request.run_id))

    async def aclose(self) -> None:
        await self.judge.aclose()

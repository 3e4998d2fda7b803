"""gRPC face of the judge: `GradeRequest` → `GradeJob`, records → `GradeResult`, usage → `Usage`.

Domain errors raised by the core (InvalidArgument naming `items[3].response`, ...) travel untouched to the
shared runtime's interceptor, which maps them to status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from polyglot.v1 import common_pb2, judge_pb2, judge_pb2_grpc

from services.common.messages import from_message, to_message
from services.common.status import item_status
from services.judge.core import Judge
from services.judge.records import GradeItem, GradeJob, GradeRecord, Outcome, TranslationRecord
from services.judge.translation import TranslateJob
from services.judge.usage import Usage

_OUTCOMES = {outcome: judge_pb2.GradeOutcome.Value(f"GRADE_OUTCOME_{outcome.value}") for outcome in Outcome}


def usage_message(usage: Usage) -> common_pb2.Usage:
    return to_message(common_pb2.Usage, usage)


def grade_result(record: GradeRecord) -> judge_pb2.GradeResult:
    # `note` travels by name; it also stays in an OK status's message for clients older than the field
    # (drop that in the next version).
    return to_message(
        judge_pb2.GradeResult, record, outcome=_OUTCOMES[record.outcome], status=item_status(record.error, record.note)
    )


def translation(record: TranslationRecord) -> judge_pb2.Translation:
    return judge_pb2.Translation(
        index=record.index, text=record.text, cached=record.cached, status=item_status(record.error)
    )


def grade_job(request: judge_pb2.GradeRequest) -> GradeJob:
    items = [from_message(GradeItem, item) for item in request.items]
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

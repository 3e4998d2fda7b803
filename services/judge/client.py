"""Typed client of the judge service; returns the dataclasses of `services.judge.records`, never protobufs.

with JudgeClient("127.0.0.1:50053") as judge:
    graded = judge.grade([GradeItem(prompt, reply, "de")], run_id="study1")
    graded.records[0].score, graded.records[0].outcome          # 1, Outcome.LANGUAGE_MISMATCH
    judge.translate(["Hello"], target_language="de").records[0].text
    judge.usage("study1").cost_usd
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from polyglot.v1 import common_pb2, judge_pb2, judge_pb2_grpc

from services.common.client import ServiceClient
from services.judge.records import Graded, GradeItem, GradeRecord, ItemError, Outcome, Translated, TranslationRecord
from services.judge.usage import Usage

_OUTCOMES = {judge_pb2.GradeOutcome.Value(f"GRADE_OUTCOME_{o.value}"): o for o in Outcome}
_CODE_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}  # fmt: skip


def _error(status: common_pb2.ItemStatus) -> ItemError | None:
    if not status.code:
        return None
    return ItemError(_CODE_NAMES.get(status.code, "UNKNOWN"), status.message, status.field or None)


def _usage(message: common_pb2.Usage) -> Usage:
    return Usage(
        requests=message.requests,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        cached=message.cached,
        cost_usd=message.cost_usd,
    )


def _record(result: judge_pb2.GradeResult) -> GradeRecord:
    error = _error(result.status)
    return GradeRecord(
        index=result.index,
        id=result.id,
        score=result.score,
        reasoning=result.reasoning,
        raw_reply=result.raw_reply,
        outcome=_OUTCOMES.get(result.outcome, Outcome.ERROR),
        detected_language=result.detected_language,
        cached=result.cached,
        note="" if error else result.status.message,
        error=error,
    )


class JudgeClient(ServiceClient):
    """Client of `polyglot.v1.JudgeService`. Bad input raises InvalidArgument naming the field, as in-process."""

    stub_class = judge_pb2_grpc.JudgeServiceStub

    @staticmethod
    def _request(
        items: Sequence[GradeItem], provider: str, model: str, template: str, translate_first: bool, run_id: str
    ) -> judge_pb2.GradeRequest:
        return judge_pb2.GradeRequest(
            items=[
                judge_pb2.GradeItem(
                    id=item.id,
                    prompt=item.prompt,
                    response=item.response,
                    target_language=item.target_language,
                    response_language=item.response_language,
                )
                for item in items
            ],
            judge=judge_pb2.JudgeModel(provider=provider, model=model),
            template=template,
            translate_first=translate_first,
            run_id=run_id,
        )

    def grade(
        self,
        items: Sequence[GradeItem],
        *,
        provider: str = "",
        model: str = "",
        template: str = "",
        translate_first: bool = False,
        run_id: str = "",
        timeout: float | None = None,
    ) -> Graded:
        """Records in item order, with the call's usage. Retried as a whole on UNAVAILABLE: the cache
        makes a retry cheap (finished items are not asked again)."""
        request = self._request(items, provider, model, template, translate_first, run_id)
        response = self.call("Grade", request, timeout=timeout)
        return Graded([_record(r) for r in response.results], _usage(response.usage))

    def grade_stream(
        self,
        items: Sequence[GradeItem],
        *,
        provider: str = "",
        model: str = "",
        template: str = "",
        translate_first: bool = False,
        run_id: str = "",
        timeout: float | None = None,
    ) -> Iterator[GradeRecord]:
        """Records as items finish (any order; use `.index`)."""
        request = self._request(items, provider, model, template, translate_first, run_id)
        for result in self.stream("GradeStream", request, timeout=timeout):
            yield _record(result)

    def translate(
        self,
        texts: Sequence[str],
        *,
        target_language: str,
        source_language: str = "",
        provider: str = "",
        model: str = "",
        run_id: str = "",
        timeout: float | None = None,
    ) -> Translated:
        request = judge_pb2.TranslateRequest(
            texts=list(texts),
            source_language=source_language,
            target_language=target_language,
            model=judge_pb2.JudgeModel(provider=provider, model=model),
            run_id=run_id,
        )
        response = self.call("Translate", request, timeout=timeout)
        records = [
            TranslationRecord(r.index, r.text, cached=r.cached, error=_error(r.status)) for r in response.results
        ]
        return Translated(records, _usage(response.usage))

    def usage(self, run_id: str = "", *, timeout: float | None = None) -> Usage:
        return _usage(self.call("GetUsage", judge_pb2.GetUsageRequest(run_id=run_id), timeout=timeout))

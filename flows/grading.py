"""Replies graded the way a judge-graded task grades them: lid's language of each prompt and reply and its
line check of each reply, then the judge's grade (given that reply language, so it applies the paper's
gate without asking lid again), turned into the task's metrics by its hook's `judged_metrics`.

One path for a study's shards (`flows.steps`) and for outputs scored from a file (`flows.score`).
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flows.results import Outcome
from services.judge.records import GradeItem
from services.judge.records import Outcome as JudgeOutcome

LID_BATCH = 128  # texts per lid call, well under the service's batch limit
_NO_GRADE = type("NoGrade", (), {"score": 0})()  # without a judge: judged_metrics leaves helpfulness out


@dataclass(frozen=True)
class Graded:
    """One item as it is recorded: the metrics it has, its outcome, and its sample (what the step had in
    hand: prompt, reply, language labels, the judge's verdict, log-likelihoods)."""

    metrics: dict[str, float]
    outcome: Outcome
    sample: dict[str, Any]


def plain(record: Any, **extra: Any) -> dict[str, Any]:
    """A service's record as a sample field: its fields but the batch position, enums as their values."""
    data = {k: v for k, v in asdict(record).items() if k != "index"} | extra
    return json.loads(json.dumps(data, default=lambda o: o.value if isinstance(o, enum.Enum) else str(o)))


def top_language(identification: Any) -> str:
    return identification.predictions[0].language if identification.predictions else ""


def _batched(call: Callable[[list[Any]], list[Any]], items: Sequence[Any]) -> list[Any]:
    return [r for start in range(0, len(items), LID_BATCH) for r in call(list(items[start : start + LID_BATCH]))]


def grade_replies(
    lid: Any,
    judge: Any,
    *,
    prompts: Sequence[str],
    replies: Sequence[str],
    targets: Sequence[str],
    grade_ids: Sequence[str],
    judged_metrics: Callable[..., dict[str, float]],
    judge_options: Mapping[str, str],
    run_id: str,
    lid_slot: contextlib.AbstractContextManager = contextlib.nullcontext(),
    judge_slot: contextlib.AbstractContextManager = contextlib.nullcontext(),
) -> list[Graded]:
    """Each reply's metrics, outcome and sample fields. `judge` None: lid's metrics only. A text lid refuses
    gives the item REFUSED and no metric (nothing about its language can be trusted)."""
    with lid_slot:
        ids = _batched(lambda texts: lid.identify(texts, k=1, strip_role_markers=True), [*prompts, *replies])
        checks = _batched(lid.check_language, list(zip(replies, targets, strict=True)))
    prompt_ids, reply_ids = ids[: len(replies)], ids[len(replies) :]
    grades: list[Any] = [_NO_GRADE] * len(replies)
    if judge is not None:
        items = [
            GradeItem(id=i, prompt=p, response=r, target_language=t, response_language=top_language(rid) or "und")
            for i, p, r, t, rid in zip(grade_ids, prompts, replies, targets, reply_ids, strict=True)
        ]
        with judge_slot:
            grades = judge.grade(items, run_id=run_id, **judge_options).records
    graded = []
    for prompt, target, p, r, check, grade in zip(prompts, targets, prompt_ids, reply_ids, checks, grades, strict=True):
        sample = {
            "instruction": prompt,
            "prompt_language": [plain(x) for x in p.predictions],
            "reply_language": [plain(x) for x in r.predictions],
            "language_check": plain(check),
        }
        if p.error or r.error or check.error:
            sample["lid_error"] = p.error or r.error or check.error
            graded.append(Graded({}, Outcome.REFUSED, sample))
            continue
        outcome = Outcome.OK
        if grade is not _NO_GRADE:
            sample["judge"] = plain(grade)
            if grade.outcome is not JudgeOutcome.GRADED:
                outcome = Outcome(grade.outcome.value.lower())
        graded.append(Graded(judged_metrics(grade, p, r, target, check), outcome, sample))
    return graded

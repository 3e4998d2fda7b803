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
from services.common import languages
from services.common.errors import TRANSIENT_CODES, error_for
from services.judge.records import GradeItem
from services.judge.records import Outcome as JudgeOutcome

LID_BATCH = 128  # texts per lid call, well under the service's batch limit
JUDGE_BATCH = 500  # items per Grade call, well under the judge's default max_items_per_call (5000)
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


def _gate_target(target: str, prompt_id: Any, gate_language: str) -> str:
    """The language the judge's gate compares a reply with: the target, or (`prompt`, the paper's code) the
    prompt's own LID label, falling back to the target when lid names none the registry knows."""
    if gate_language != "prompt":
        return target
    found = languages.resolve(top_language(prompt_id) or "")
    return found.code if found else target


Progress = Callable[[str, int, int], None]  # (stage, done, total) after each batch


def _batched(
    call: Callable[[list[Any]], list[Any]],
    items: Sequence[Any],
    size: int = LID_BATCH,
    progress: Progress | None = None,
    stage: str = "",
) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(items), size):
        out += call(list(items[start : start + size]))
        if progress is not None:
            progress(stage, len(out), len(items))
    return out


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
    gate_language: str = "target",
    progress: Progress | None = None,
) -> list[Graded]:
    """Each reply's metrics, outcome and sample fields. `judge` None: lid's metrics only. A text lid refuses
    gives the item REFUSED and no metric (nothing about its language can be trusted). `progress` hears
    `("lid identify" | "lid check" | "judge", done, total)` after each batch."""
    with lid_slot:
        ids = _batched(lambda texts: lid.identify(texts, k=1, strip_role_markers=True), [*prompts, *replies],
                       progress=progress, stage="lid identify")  # fmt: skip
        checks = _batched(lid.check_language, list(zip(replies, targets, strict=True)), progress=progress,
                          stage="lid check")  # fmt: skip
    prompt_ids, reply_ids = ids[: len(replies)], ids[len(replies) :]
    grades: list[Any] = [_NO_GRADE] * len(replies)
    if judge is not None:
        items = [
            GradeItem(id=i, prompt=p, response=r, target_language=_gate_target(t, pid, gate_language),
                      response_language=top_language(rid) or "und")  # fmt: skip
            for i, p, r, t, pid, rid in zip(grade_ids, prompts, replies, targets, prompt_ids, reply_ids, strict=True)
        ]
        with judge_slot:  # in batches: a judge caps the items of one call (its max_items_per_call)
            grades = _batched(lambda batch: judge.grade(batch, run_id=run_id, **judge_options).records, items,
                              JUDGE_BATCH, progress, "judge")  # fmt: skip
        for grade in grades:  # an outage answered as an ERROR item (older judges): retried, never stored as done
            if grade.error is not None and grade.error.code in TRANSIENT_CODES:
                message = f"judging of item {grade.id}: {grade.error.message}"
                raise error_for(grade.error.code, message, grade.error.field)
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


# -- line-level language confusion (the Language Confusion Benchmark's check) ------------------------------


def check_lines(
    lid: Any,
    replies: Sequence[str],
    targets: Sequence[str],
    *,
    lid_slot: contextlib.AbstractContextManager = contextlib.nullcontext(),
    progress: Progress | None = None,
) -> list[Any]:
    """lid's line-level check of each reply against its target language with the benchmark's rules
    (`metric="lcb"`: per line label and probability, the reply's line pass and word pass). `progress` hears
    `("lid lines", done, total)` after each batch."""
    items = list(zip(replies, targets, strict=True))
    with lid_slot:
        return _batched(lambda batch: lid.check_language(batch, metric="lcb"), items, progress=progress,
                        stage="lid lines")  # fmt: skip


def line_sample(check: Any) -> dict[str, Any]:
    """A reply's line check as its sample field `lid_lines`: the verdicts and each checked line's label and
    probability (what the report's confusion matrices count), or lid's error."""
    if check.error:
        return {"error": check.error}
    lines = [
        {
            "text": line.text,
            "language": line.language,
            "raw_label": line.raw_label,
            "probability": round(float(line.probability), 4),
            "passed": bool(line.passed),
        }
        for line in check.lines
    ]
    return {"line_pass": check.line_pass, "word_pass": check.word_pass, "lines": lines}

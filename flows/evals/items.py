"""One evaluation item, the same record for every task, as stored in an eval-set artifact (jsonl).

Generation tasks (chat, XQuAD, X-CSQA) send `prompt` with `response_prefix` to the generator's
`Generate`; log-likelihood tasks (XNLI) send one `Score` item per entry of `choices`, with `prompt` as
the context. Gold answers sit beside the prompt, so scoring needs nothing but the item and the output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class EvalItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable id; the same for parallel items across languages.")
    task: str = Field(description="Registered task name: chat, xquad, xcsqa, xnli.")
    language: str = Field(description="ISO 639-1 code of the language the item tests.")
    mode: str = Field("", description="XQuAD: `en:xx` or `xx:xx`; empty for other tasks.")
    prompt: str = Field("", description="Generation prompt in Guanaco format, or the scoring context.")
    response_prefix: str = Field(
        "", description="Forced start of the answer, appended to the prompt verbatim (leading space included)."
    )
    instruction: str = Field("", description="The user's request alone (chat: what the judge grades).")
    question: str = Field("", description="XQuAD: the question, for post-processing answers.")
    choices: list[str] = Field(
        default_factory=list,
        description="XNLI: the continuations to score (lm-eval's, delimiter included); X-CSQA: option texts.",
    )
    answers: list[str] = Field(default_factory=list, description="Gold: XQuAD answer texts; X-CSQA the letter.")
    label: int | None = Field(None, description="Gold index into `choices` (XNLI, X-CSQA).")
    source: str = Field("", description="Where the prompt came from: a prompt set, `human` or `mt`.")

    def to_json_line(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def dumps_items(items: Iterable[EvalItem]) -> bytes:
    """The jsonl bytes of an eval set: stable, so equal item lists give equal bytes."""
    return "".join(item.to_json_line() + "\n" for item in items).encode("utf-8")


def loads_items(data: bytes | str) -> list[EvalItem]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return [EvalItem.model_validate(json.loads(line)) for line in text.splitlines() if line.strip()]

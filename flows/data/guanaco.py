"""The Guanaco conversation format: what every tuning mix stores in `text` and the trainer consumes.

    ### Human: {prompt}### Assistant: {reply}### Human: {prompt}### Assistant: {reply}

This is the layout of `timdettmers/openassistant-guanaco` (no space before a marker) and of the
paper's prompt template (`### Human: {{ instruction }}### Assistant:`). Sources with other spacing
(the OASST jsonl in ../shared writes ` ### Assistant:`) are parsed into turns and written back in
this one layout, so training text and evaluation prompts agree byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.common.presets import GUANACO_STOPS

HUMAN, ASSISTANT = GUANACO_STOPS
Role = Literal["human", "assistant"]
_MARKER = re.compile(r"###\s*(Human|Assistant)\s*:")
_MARKER_TEXT: dict[Role, str] = {"human": HUMAN, "assistant": ASSISTANT}


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


def parse(text: str) -> list[Turn]:
    """Split Guanaco text into turns; text with no marker at all is one human turn.

    Empty turns are kept only when they are the last one (a prompt that ends in `### Assistant:`).
    """
    pieces = _MARKER.split(text)
    preamble, rest = pieces[0].strip(), pieces[1:]
    if not rest:
        return [Turn("human", preamble)] if preamble else []
    turns: list[Turn] = []
    if preamble:  # text before the first marker belongs to nobody; treat it as the human's
        turns.append(Turn("human", preamble))
    for marker, content in zip(rest[0::2], rest[1::2], strict=True):
        role: Role = "human" if marker == "Human" else "assistant"
        turns.append(Turn(role, content.strip()))
    return [t for i, t in enumerate(turns) if t.content or i == len(turns) - 1]


def format_turns(turns: Sequence[Turn]) -> str:
    """Guanaco text from turns; an assistant turn with empty content leaves an open `### Assistant:`."""
    parts = []
    for turn in turns:
        marker = _MARKER_TEXT[turn.role]
        parts.append(f"{marker} {turn.content}" if turn.content else marker)
    return "".join(parts)


def normalise(text: str) -> str:
    """The canonical Guanaco layout of `text` (idempotent)."""
    return format_turns(parse(text))


def is_complete(text: str) -> bool:
    """A whole training conversation: human first, roles alternating, no empty turn, ending in a reply."""
    turns = parse(text)
    return (
        len(turns) >= 2
        and turns[-1].role == "assistant"
        and all(turn.content for turn in turns)
        and all(turn.role == ("human" if i % 2 == 0 else "assistant") for i, turn in enumerate(turns))
    )


def prompt(instruction: str) -> str:
    """A single-turn generation prompt, the paper's template: `### Human: {instruction}### Assistant:`."""
    return f"{HUMAN} {instruction.strip()}{ASSISTANT}"


def strip_role_markers(text: str) -> str:
    """The text a language identifier should see: no role markers, one line (fastText rejects newlines).

    As the paper's labelling script does: markers and line breaks become spaces, whitespace collapses.
    """
    return " ".join(_MARKER.sub(" ", text).split())

"""Chat messages as one prompt in the study models' format (Guanaco, the paper's template):

    ### Human: {user}### Assistant: {reply}### Human: {user}### Assistant:

System messages and consecutive user messages join the next human turn (blank line between), as the judge's
`generator` provider lays them out; the prompt ends in an open `### Assistant:` where the reply begins, and
the role markers are stop strings, so the model never writes the next turn itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.presets import GUANACO_STOPS

HUMAN, ASSISTANT = GUANACO_STOPS


def guanaco_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """(role, content) pairs → the prompt; roles are `system`, `user` and `assistant`."""
    parts: list[str] = []
    pending: list[str] = []
    for role, content in messages:
        if role == "assistant":
            parts.append(_turn(HUMAN, pending))
            parts.append(f"{ASSISTANT} {content.strip()}")
            pending = []
        else:
            pending.append(content.strip())
    parts.append(_turn(HUMAN, pending))
    return "".join(parts) + ASSISTANT


def _turn(marker: str, contents: list[str]) -> str:
    text = "\n\n".join(c for c in contents if c)
    return f"{marker} {text}" if text else marker

"""The paper's post-processing of a generated reply at its stop strings.

Its inference script takes the stop strings in the order given (`PAPER_STOPS`) and, for each one found in
the text, cuts the text before it and strips the rest; a text with none of them is returned unchanged (not
even stripped). The generator already ends a reply at the first stop string it produces, so applied to a
Polyglot completion this changes nothing unless a stop string survived (a backend that missed it); it is
here so that a reply can be checked against the paper's rule, and for outputs produced elsewhere.

    >>> trim_at_stops("  Paris.\\n### Human: next", PAPER_STOPS)
    'Paris.'
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.presets import PAPER_STOPS

__all__ = ["PAPER_STOPS", "trim_at_stops"]


def trim_at_stops(text: str, stops: Sequence[str] = PAPER_STOPS) -> str:
    """`text` cut before each stop string in turn (in `stops` order) and stripped after every cut."""
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            text = text[:at].strip()
    return text

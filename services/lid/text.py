"""Text preparation for language identification, and the token count that decides which lines count.

Preprocessing follows the paper's use of OpenLID (Kew et al., "Turning English-centric LLMs Into
Polyglots"): newlines become spaces (fastText reads one line per prediction), and the Guanaco role
markers can be removed so that they do not count as English. NUL becomes a space too: fastText
separates words at NUL as at a space, and this way a text of NULs counts as blank (otherwise fastText
would answer for it as for an empty line: `en`, 0.12). Carriage returns, tabs, vertical tabs and form
feeds are word separators for fastText already and are left alone.
"""

from __future__ import annotations

import re

# Guanaco/OpenAssistant role markers, e.g. "### Human: Hallo ### Assistant: Hi".
_ROLE_MARKER = re.compile(r"###\s*(?:Human|Assistant)\s*:")

# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, Japanese kana, CJK
# ideographs (and their extensions). In these a "token" is a character (see `count_tokens`).
_NO_SPACE_CHARS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_TOKEN = re.compile(f"[{_NO_SPACE_CHARS}]|[^\\s{_NO_SPACE_CHARS}]+")


def strip_markers(text: str) -> str:
    """The text without Guanaco role markers."""
    return _ROLE_MARKER.sub(" ", text) if "###" in text else text


def prepare(text: str, strip_role_markers: bool = False) -> str:
    """One fastText line: newlines and NUL → spaces; role markers removed on request."""
    if strip_role_markers and "###" in text:
        text = _ROLE_MARKER.sub(" ", text)
    if "\n" in text:
        text = text.replace("\n", " ")
    if "\x00" in text:
        text = text.replace("\x00", " ")
    return text


def is_blank(text: str) -> bool:
    """Empty or whitespace only (Unicode whitespace); run after `prepare`, which turned NUL into a space."""
    return not text or text.isspace()


def count_tokens(line: str) -> int:
    """Whitespace tokens, except that each character of a no-space script counts as one token.

    The Language Confusion Benchmark skips lines of fewer than 5 whitespace tokens. Counted that way
    a whole Chinese, Japanese or Thai paragraph is one "token" and would never be checked, so for
    those scripts each character counts (a Chinese word is 1-2 characters, so 5 characters is still
    a short line). Mixed lines add both: "Python 是一种语言" is 1 + 5 = 6 tokens.
    """
    return len(_TOKEN.findall(line))


def split_lines(text: str) -> list[str]:
    """Non-blank lines, split on every Unicode line boundary (\\n, \\r\\n, \\r, U+2028, ...)."""
    return [line for line in text.splitlines() if line.strip()]

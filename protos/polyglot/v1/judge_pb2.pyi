from polyglot.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GradeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRADE_OUTCOME_UNSPECIFIED: _ClassVar[GradeOutcome]
    GRADE_OUTCOME_GRADED: _ClassVar[GradeOutcome]
    GRADE_OUTCOME_LANGUAGE_MISMATCH: _ClassVar[GradeOutcome]
    GRADE_OUTCOME_UNPARSABLE: _ClassVar[GradeOutcome]
    GRADE_OUTCOME_ERROR: _ClassVar[GradeOutcome]
GRADE_OUTCOME_UNSPECIFIED: GradeOutcome
GRADE_OUTCOME_GRADED: GradeOutcome
GRADE_OUTCOME_LANGUAGE_MISMATCH: GradeOutcome
GRADE_OUTCOME_UNPARSABLE: GradeOutcome
GRADE_OUTCOME_ERROR: GradeOutcome

class JudgeModel(_message.Message):
    __slots__ = ("provider", "model")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class GradeItem(_message.Message):
    __slots__ = ("id", "prompt", "response", "target_language", "response_language")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    prompt: str
    response: str
    target_language: str
    response_language: str
    def __init__(self, id: _Optional[str] = ..., prompt: _Optional[str] = ..., response: _Optional[str] = ..., target_language: _Optional[str] = ..., response_language: _Optional[str] = ...) -> None: ...

class GradeRequest(_message.Message):
    __slots__ = ("items", "judge", "template", "translate_first", "run_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_FIRST_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[GradeItem]
    judge: JudgeModel
    template: str
    translate_first: bool
    run_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[GradeItem, _Mapping]]] = ..., judge: _Optional[_Union[JudgeModel, _Mapping]] = ..., template: _Optional[str] = ..., translate_first: _Optional[bool] = ..., run_id: _Optional[str] = ...) -> None: ...

class GradeResult(_message.Message):
    __slots__ = ("index", "id", "score", "reasoning", "raw_reply", "outcome", "detected_language", "cached", "status", "note")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    RAW_REPLY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETECTED_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    score: int
    reasoning: str
    raw_reply: str
    outcome: GradeOutcome
    detected_language: str
    cached: bool
    status: _common_pb2.ItemStatus
    note: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., score: _Optional[int] = ..., reasoning: _Optional[str] = ..., raw_reply: _Optional[str] = ..., outcome: _Optional[_Union[GradeOutcome, str]] = ..., detected_language: _Optional[str] = ..., cached: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class GradeResponse(_message.Message):
    __slots__ = ("results", "usage")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[GradeResult]
    usage: _common_pb2.Usage
    def __init__(self, results: _Optional[_Iterable[_Union[GradeResult, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("texts", "source_language", "target_language", "model", "run_id")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    source_language: str
    target_language: str
    model: JudgeModel
    run_id: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., source_language: _Optional[str] = ..., target_language: _Optional[str] = ..., model: _Optional[_Union[JudgeModel, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("index", "text", "cached", "status")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    cached: bool
    status: _common_pb2.ItemStatus
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., cached: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ...) -> None: ...

class TranslateResponse(_message.Message):
    __slots__ = ("results", "usage")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Translation]
    usage: _common_pb2.Usage
    def __init__(self, results: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

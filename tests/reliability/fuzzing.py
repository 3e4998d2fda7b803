"""Fuzzing every RPC of every Polyglot service (issue 19): requests built from the message descriptors, and raw
bytes that are not a valid request at all, sent through a generic call with identity serializers.

The RPC list is read from the descriptors of every `polyglot.v1.*_pb2` module, so a new RPC is fuzzed without a
line here. A case is the list of raw request messages one call sends (one for a unary request, 0-3 for a
streaming one); each message is either a generated request serialized, or bytes that must not decode:

- random field values: extreme and negative numbers, NaN and infinities, empty, huge and plausible strings,
  enum numbers the enum does not name, nested messages and maps;
- corrupt protobuf: random bytes, a valid request cut short or with a byte flipped, impossible tags;
- valid protobuf whose string field (at any depth) holds invalid UTF-8, hand-encoded on the wire.

`tests/reliability/test_fuzz_services.py` asserts the outcome of each case; `bench/bench_fuzz.py` runs the same
strategies at >= 500 cases per RPC and records codes and latencies.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import pkgutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import polyglot.v1
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

F = FieldDescriptor
EXAMPLES_ENV = "POLYGLOT_FUZZ_EXAMPLES"
CI_EXAMPLES = 12  # per RPC; the suite's default keeps the fuzz file within its time budget
INT32, INT64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
HUGE_BYTES = 5 * 1024 * 1024  # beyond the runtime's default message limit (4 MiB): gRPC's own RESOURCE_EXHAUSTED
# Strings a service may take for real, so that some cases get past the first check: languages, store URIs
# (local, S3, escaping the root), names, templates, presets, JSON schemas and regexes.
PLAUSIBLE = [
    "", " ", "en", "de", "zh", "deu_Latn", "eng_Latn", "xx", "default", "greedy", "tiny", "base",
    "hello world", "Das ist ein deutscher Satz.", "### Human: hi ### Assistant:", "{}", '{"type": "object"}',
    "[a-z]+", "(", "s3://polyglot-generator-tests/models/tiny-lora/adapter", "s3://missing/x", "file:///tmp",
    "file:///etc/passwd", "../../etc/passwd", "/dev/zero", "http://127.0.0.1:1/x", "openai", "gpt-3.5-turbo",
    "helpfulness", "translate", "run-1", "a" * 300, "\x00", "\n\r\t", "\u202e\u2028", "💥" * 50, "%s%n{0}",
]  # fmt: skip
# Invalid UTF-8: a lone continuation byte, a truncated sequence, an overlong NUL, an encoded surrogate, past U+10FFFF.
BAD_UTF8 = [b"\xff", b"\x80", b"\xc3\x28", b"\xe2\x82", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xfe"]


@dataclass(frozen=True)
class Rpc:
    """One method of one service, as its descriptor says."""

    service: str  # polyglot.v1.LidService
    name: str  # Identify
    request: Descriptor
    response: Descriptor
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def id(self) -> str:
        return f"{self.service.rsplit('.', 1)[1]}.{self.name}"


def all_rpcs() -> list[Rpc]:
    """Every RPC of every service in every `polyglot.v1.*_pb2` module."""
    rpcs = []
    for info in pkgutil.iter_modules(polyglot.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"polyglot.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.append(
                    Rpc(service.full_name, method.name, method.input_type, method.output_type,
                        method.client_streaming, method.server_streaming)
                )  # fmt: skip
    return rpcs


def examples() -> int:
    """Cases per RPC: `POLYGLOT_FUZZ_EXAMPLES`, else the suite's small default."""
    return int(os.environ.get(EXAMPLES_ENV, CI_EXAMPLES))


# -- generated requests ------------------------------------------------------------------------------------


def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [edge for edge in (lo, hi, 0, 1, -1, 2, 1000) if lo <= edge <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(-3, 64).filter(lambda n: lo <= n <= hi), st.integers(lo, hi))


_FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, 1e-30]
_STRINGS = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=400),
    st.integers(1000, 200_000).map(lambda n: "x" * n),
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    t = field.type
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return _integers(*INT32)
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return _integers(*INT64)
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return _integers(0, 2**32 - 1)
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return _integers(0, 2**64 - 1)
    if t == F.TYPE_FLOAT:
        return st.one_of(st.sampled_from([*_FLOAT_EDGES, 3.4e38, -3.4e38]), st.floats(width=32))
    if t == F.TYPE_DOUBLE:
        return st.one_of(st.sampled_from([*_FLOAT_EDGES, 1e308, -1e308, 5e-324]), st.floats())
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_STRING:
        return _STRINGS
    if t == F.TYPE_BYTES:
        return st.one_of(_STRINGS.map(str.encode), st.binary(max_size=200))
    if t == F.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), _integers(*INT32))
    raise TypeError(f"no strategy for {field.full_name} (type {t})")


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.type == F.TYPE_MESSAGE:
        return message_values(field.message_type, depth + 1)
    return _scalar(field)


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_value(key, depth), _value(value, depth), max_size=4)
    if field.is_repeated:
        return st.lists(_value(field, depth), max_size=20 if depth == 0 else 4)
    return _value(field, depth)


def message_values(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    """A message of `descriptor` (a dynamic class), any subset of its fields set; nesting stops at depth 4."""
    fields = {} if depth > 4 else {f.name: _field(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(descriptor, values))


def _build(descriptor: Descriptor, values: dict):
    message = GetMessageClass(descriptor)()
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(message, name) if field.is_repeated else None
        if isinstance(value, dict):
            for key, item in value.items():
                if hasattr(item, "DESCRIPTOR"):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif target is not None:
            target.extend(value)
        elif field.type == F.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)  # a oneof member set later clears an earlier one, as on the wire
    return message


# -- raw bytes on the wire ---------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def string_paths(descriptor: Descriptor, depth: int = 0) -> list[tuple[int, ...]]:
    """Field-number paths to every string field, through nested messages and map entries (depth <= 3)."""
    paths: list[tuple[int, ...]] = []
    for field in descriptor.fields:
        if field.type == F.TYPE_STRING:
            paths.append((field.number,))
        elif field.type == F.TYPE_MESSAGE and depth < 3:
            paths += [(field.number, *rest) for rest in string_paths(field.message_type, depth + 1)]
    return paths


def string_at(path: tuple[int, ...], data: bytes) -> bytes:
    """The wire bytes of a message whose string field at `path` holds `data` (e.g. bytes that are not UTF-8)."""
    payload = data
    for number in reversed(path):
        payload = _delimited(number, payload)
    return payload


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, max(0, len(valid) - 1)).map(lambda i: valid[:i])
    flip = st.tuples(st.integers(0, max(0, len(valid) - 1)), st.integers(1, 255)).map(
        lambda p: valid[: p[0]] + bytes([(valid[p[0]] ^ p[1]) if valid else p[1]]) + valid[p[0] + 1 :]
    )
    # Field number 0, wire types 7 and 6 (none), a varint of 11 bytes, field number 2**29, a length past the end.
    bad_tags = [b"\x00", b"\x07", b"\x0e\x01", b"\xff" * 10 + b"\x01", _varint(2**29 << 3), b"\x0a\xff\xff\xff\x7f"]
    return st.one_of(cut, flip, st.sampled_from(bad_tags).map(lambda tag: valid + tag))


def _few_fields(descriptor: Descriptor) -> st.SearchStrategy:
    """A message with one or two of its fields set (generated values): what a mutation of a seed changes."""
    names = [f.name for f in descriptor.fields]
    chosen = st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)
    return chosen.flatmap(lambda picked: st.fixed_dictionaries(
        {name: _field(descriptor.fields_by_name[name], 0) for name in picked})).map(
        lambda values: _build(descriptor, values))  # fmt: skip


def raw_messages(descriptor: Descriptor, seeds: Sequence[Message] = ()) -> st.SearchStrategy[bytes]:
    """Bytes that claim to be a `descriptor` message: valid, corrupt, or valid with invalid UTF-8 in a string.

    `seeds` are valid requests (a server's real model, job, adapter): a case may be a seed, or a seed with one
    or two fields overwritten by generated values (protobuf merges concatenated messages), so that cases also
    get past a service's first checks.
    """
    valid = message_values(descriptor).map(lambda m: m.SerializeToString())
    if seeds:
        seed = st.sampled_from([s.SerializeToString() for s in seeds])
        mutated = st.tuples(seed, _few_fields(descriptor)).map(lambda p: p[0] + p[1].SerializeToString())
        valid = st.one_of(valid, seed, mutated, mutated)
    choices = [valid, valid, st.binary(max_size=300), valid.flatmap(_mutations)]
    paths = string_paths(descriptor)
    if paths:
        injected = st.tuples(valid, st.sampled_from(paths), st.sampled_from(BAD_UTF8), st.booleans()).map(
            lambda c: c[0] + string_at(c[1], c[2]) if c[3] else string_at(c[1], c[2]) + c[0]
        )
        huge = st.sampled_from(paths).map(lambda path: string_at(path, b"y" * HUGE_BYTES))
        choices += [injected, injected, huge]
    return st.one_of(choices)


def cases(rpc: Rpc, seeds: Sequence[Message] = ()) -> st.SearchStrategy[list[bytes]]:
    """What one call sends: one raw message, or 0-3 of them for a streaming request."""
    message = raw_messages(rpc.request, seeds)
    return st.lists(message, max_size=3) if rpc.client_streaming else message.map(lambda m: [m])


# -- one call ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    seconds: float
    item_codes: tuple[int, ...]  # the codes of per-item statuses in the replies (ItemStatus fields)


def call(channel: grpc.Channel, rpc: Rpc, messages: list[bytes], timeout: float) -> Outcome:
    """Send `messages` as they are (no serializer) and read every reply; the status, never an exception."""
    start = time.perf_counter()
    replies: list[bytes] = []
    try:
        if rpc.client_streaming and rpc.server_streaming:
            replies = list(channel.stream_stream(rpc.path)(iter(messages), timeout=timeout))
        elif rpc.client_streaming:
            replies = [channel.stream_unary(rpc.path)(iter(messages), timeout=timeout)]
        elif rpc.server_streaming:
            replies = list(channel.unary_stream(rpc.path)(messages[0], timeout=timeout))
        else:
            replies = [channel.unary_unary(rpc.path)(messages[0], timeout=timeout)]
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    seconds = time.perf_counter() - start
    response = GetMessageClass(rpc.response)
    items = tuple(code for reply in replies for code in _item_codes(response.FromString(reply)))
    return Outcome(code, details, seconds, items)


def _item_codes(message) -> Iterable[int]:
    for field, value in message.ListFields():
        if field.type != F.TYPE_MESSAGE:
            continue
        for item in value if field.is_repeated else [value]:
            if field.message_type.full_name == "polyglot.v1.ItemStatus":
                yield item.code
            elif not getattr(field.message_type.GetOptions(), "map_entry", False):
                yield from _item_codes(item)


def fuzz(
    rpc: Rpc,
    n: int,
    check: Callable[[list[bytes]], None],
    seeds: Sequence[Message] = (),
    *,
    fixed: bool = False,
    shrink: bool = True,
    explicit: Sequence[Message] = (),
) -> None:
    """Run `check(messages)` on `n` generated cases of `rpc` (hypothesis; `shrink`: look for a smaller failing
    case). `fixed`: the same cases every run (the suite's, whose time must not vary); else new ones each run."""
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]

    @settings(max_examples=n, deadline=None, database=None, derandomize=fixed, phases=phases,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(cases(rpc, seeds))
    def run(messages: list[bytes]) -> None:
        check(messages)

    for message in explicit:  # tried first, each run
        run = example([message.SerializeToString()])(run)
    run()


def found_before() -> dict[str, list[Message]]:
    """Requests the fuzzer once found refused, by RPC id: the benchmark tries them first on every run, so its
    record shows whether they still are (tests/reliability/test_fuzz_services.py has one test for each)."""
    from polyglot.v1 import common_pb2, generator_pb2, judge_pb2, trainer_pb2

    nul = "file:///tmp/a\x00b"
    item = judge_pb2.GradeItem(prompt="hi", response="hello", target_language="en", response_language="en")
    regex = generator_pb2.StructuredOutput(regex="x{1,100000}")
    spec = trainer_pb2.JobSpec(base_model="tiny", dataset_uri=nul, output_uri="file:///tmp/out")
    return {
        "GeneratorService.LoadAdapter": [generator_pb2.LoadAdapterRequest(name="fuzz", uri="\x00")],
        "GeneratorService.Generate": [generator_pb2.GenerateRequest(
            prompts=["x"], sampling=common_pb2.SamplingParams(max_tokens=4), structured=regex)],
        "JudgeService.Grade": [judge_pb2.GradeRequest(items=[item], template=nul)],
        "TrainerService.SubmitJob": [trainer_pb2.SubmitJobRequest(spec=spec)],
    }  # fmt: skip


# -- the servers and what they may answer ------------------------------------------------------------------

_C = grpc.StatusCode
_ANY_SERVICE = {_C.OK, _C.INVALID_ARGUMENT, _C.RESOURCE_EXHAUSTED}  # RESOURCE_EXHAUSTED: gRPC's message limit
# A file:// or s3:// location outside what the service may use (POLYGLOT_FILE_ROOTS, POLYGLOT_S3_BUCKETS).
_STORE = {_C.NOT_FOUND, _C.PERMISSION_DENIED}
ALLOWED: dict[str, set[grpc.StatusCode]] = {
    # Per service, from its README and servicer: what a caller may be told, with no fault injected and
    # no authentication configured (so never UNAUTHENTICATED), and never CANCELLED or
    # DEADLINE_EXCEEDED: the fuzzer cancels nothing and gives every call more time than it needs.
    "polyglot.v1.LidService": _ANY_SERVICE,
    "polyglot.v1.GeneratorService": _ANY_SERVICE | _STORE | {_C.FAILED_PRECONDITION},
    "polyglot.v1.JudgeService": _ANY_SERVICE | _STORE | {_C.FAILED_PRECONDITION},
    "polyglot.v1.TrainerService": _ANY_SERVICE | _STORE | {_C.ALREADY_EXISTS, _C.FAILED_PRECONDITION},
}
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def timeout_for(rpc: Rpc) -> float:
    """The fuzzer's deadline. Generation gets longer than a lookup: the dearest request the generator takes (some
    prompts, max_tokens just under the tiny Llama's 2,048-token context) decodes for ~45 s on one busy core."""
    return 120.0 if rpc.service == "polyglot.v1.GeneratorService" else 20.0


@dataclass(frozen=True)
class Served:
    """A running service: its address, and valid requests by RPC name to seed the cases with."""

    address: str
    seeds: dict[str, list[Message]]


TINY_LORA_URI = "s3://polyglot-generator-tests/models/tiny-lora/adapter"  # tests.fixtures.generator's upload


@contextlib.contextmanager
def lid_server() -> Iterator[Served]:
    """The lid service on the real lid.176 model, with small limits (16 texts, 4 KiB) that are cheap to hit."""
    from polyglot.v1 import lid_pb2 as pb

    from services.lid.core import LanguageIdentifier
    from tests.fixtures.lid import running_lid

    identify = [pb.IdentifyRequest(texts=[b"hello world", b"Das ist ein Satz."], k=3),
                pb.IdentifyRequest(strings=["hallo welt"], compact=True, strip_role_markers=True)]  # fmt: skip
    check = pb.CheckLanguageRequest(items=[pb.LanguageCheck(text=b"hello world\nhow are you", expected_language="en")])
    with running_lid(LanguageIdentifier(max_batch=16, max_text_bytes=4096)) as address:
        yield Served(address, {"Identify": identify, "IdentifyStream": identify, "CheckLanguage": [check]})


@contextlib.contextmanager
def generator_server(model_dir: Path, cache_dir: Path, store_options: dict | None) -> Iterator[Served]:
    """The generator (hf backend) on the tiny Llama, adapters from the S3 server of `store_options` (which holds
    the tiny LoRA at `TINY_LORA_URI`)."""
    from services.common.inprocess import serve_in_thread
    from services.generator.factory import create_generator
    from services.generator.main import registrations
    from tests.fixtures.generator import generator_settings

    generator = create_generator(generator_settings(model_dir, "hf", cache_dir), store_options=store_options)
    with serve_in_thread(registrations(generator)) as address:
        yield Served(address, generator_seeds())


def generator_seeds() -> dict[str, list[Message]]:
    """Valid generator requests: short generations (plain, constrained, with the tiny LoRA), a score, the
    adapter's loading and unloading."""
    from polyglot.v1 import common_pb2
    from polyglot.v1 import generator_pb2 as pb

    short = common_pb2.SamplingParams(preset="chat", max_tokens=4)
    return {
        "Generate": [
            pb.GenerateRequest(prompts=["Hello", "Wie geht's?"], sampling=short, request_id="fuzz"),
            pb.GenerateRequest(prompts=["x"], sampling=short, structured=pb.StructuredOutput(regex="[a-z]{1,4}")),
            pb.GenerateRequest(prompts=["x"], sampling=short, adapter="fuzz"),
        ],
        "Score": [pb.ScoreRequest(items=[pb.ScoreItem(context="Hello", continuation=" world")])],
        "LoadAdapter": [pb.LoadAdapterRequest(name="fuzz", uri=TINY_LORA_URI)],
        "UnloadAdapter": [pb.UnloadAdapterRequest(name="fuzz")],
    }


@contextlib.contextmanager
def judge_server(store_dir: Path) -> Iterator[Served]:
    """The judge against the scripted OpenAI-compatible endpoint on loopback (every reply a valid grade)."""
    from polyglot.v1 import judge_pb2 as pb

    from services.judge.settings import JudgeSettings
    from tests.fixtures.judge import TEST_API_KEY, ScriptedOpenAIServer, running_judge

    item = pb.GradeItem(id="1", prompt="Say hello.", response="Hello there, my friend!", target_language="en")
    # With the reply's language given (this judge has no lid service to detect it), and without.
    grade = [pb.GradeRequest(items=[item], run_id="fuzz", template=template) for template in ("", "helpfulness")]
    grade[1].items[0].response_language = "en"
    seeds = {
        "Grade": grade,
        "GradeStream": grade,
        "Translate": [pb.TranslateRequest(texts=["Hallo Welt"], source_language="de", target_language="en")],
        "GetUsage": [pb.GetUsageRequest(run_id="fuzz")],
    }
    with ScriptedOpenAIServer() as openai:
        settings = JudgeSettings(
            provider="openai", model="gpt-3.5-turbo", base_url=openai.base_url, api_key=TEST_API_KEY,
            concurrency=8, max_attempts=2, backoff_initial=0.01, backoff_max=0.05, request_timeout=5.0,
            store_uri=store_dir.as_uri(),
        )  # fmt: skip
        with running_judge(settings) as address:
            yield Served(address, seeds)


@contextlib.contextmanager
def trainer_server(state_dir: Path, model_dir: Path) -> Iterator[Served]:
    """The trainer, whose workers cannot start (`/bin/false`): a valid spec (the seed's, or one the fuzzer
    makes) becomes a job that fails at once instead of a training run."""
    from polyglot.v1 import trainer_pb2 as pb
    from polyglot.v1 import trainer_pb2_grpc

    from services.common.inprocess import serve_in_thread
    from services.common.settings import ServerSettings
    from services.trainer.main import build
    from services.trainer.settings import TrainerSettings

    state_dir.parent.mkdir(parents=True, exist_ok=True)
    dataset = state_dir.parent / f"{state_dir.name}-train.jsonl"
    dataset.write_text('{"text": "### Human: Hi ### Assistant: Hello!"}\n' * 8)
    spec = pb.JobSpec(base_model=str(model_dir), dataset_uri=dataset.as_uri(),
                      output_uri=(state_dir.parent / f"{state_dir.name}-out").as_uri(),
                      hyperparameters=pb.Hyperparameters(max_steps=2, max_length=32, lora_r=4))  # fmt: skip
    settings = TrainerSettings(state_dir=state_dir, worker_python="/bin/false", max_concurrent_jobs=1,
                               poll_interval_seconds=0.1, cancel_grace_seconds=1.0, device="cpu")  # fmt: skip
    # The callers' files may lie beside the state dir and in the model: the seed's dataset, output and model.
    server = ServerSettings(port=0, metrics_port=0, file_roots=[state_dir.parent, model_dir])
    with serve_in_thread(functools.partial(build, settings=settings), server) as address, \
            grpc.insecure_channel(address) as channel:  # fmt: skip
        submit = pb.SubmitJobRequest(spec=spec, idempotency_key="fuzz-seed")
        job = trainer_pb2_grpc.TrainerServiceStub(channel).SubmitJob(submit, timeout=60)
        by_id = [pb.GetJobRequest(job_id=job.id)]
        yield Served(address, {
            "SubmitJob": [submit, pb.SubmitJobRequest(spec=spec)],
            "GetJob": by_id,
            "WatchJob": [pb.WatchJobRequest(job_id=job.id)],
            "CancelJob": [pb.CancelJobRequest(job_id=job.id)],
            "ListJobs": [pb.ListJobsRequest(states=[pb.JOB_STATE_FAILED], page_size=2)],
        })  # fmt: skip

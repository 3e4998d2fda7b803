"""gRPC face of the lid service: messages in, `LanguageIdentifier` calls, messages out.

Prediction runs on the event loop's own thread, one batch at a time (an `asyncio.Lock`, first come,
first served), in slices of about `SLICE_BYTES` of text with a yield to the loop between slices. fastText
holds the GIL, so a worker thread could not run beside the loop anyway; it only made the two threads
hand the GIL back and forth on every network event, which cost short texts 10-20% of streamed
throughput. Slicing keeps health checks and the transport served while a large batch is
computed; FIFO keeps the mean latency of concurrent callers lower than time-slicing them would. With
`workers` > 1, forked worker processes compute shares of each large batch beside this one (`pool.py`);
scale further with replicas.

Responses come in two forms (lid.proto): one `Identification` message per text, or, when the request
asks for `compact` (the typed client does), parallel packed arrays, which cost a tenth as much to
build here and to read in the client; at ~30 µs per prediction, every µs per text is 3% of throughput.
The nested form, what reflection-only callers get, is written straight to wire bytes (`wire.py`) when
the service is mounted with `wire.add_to_server` (the process entry does).

Texts arrive as `texts` (UTF-8 bytes: the typed clients, so one malformed item fails alone) or as
`strings` (JSON callers such as grpcurl, which would otherwise base64 every text); both go to the core as
they are, which takes either.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence

from polyglot.v1 import lid_pb2, lid_pb2_grpc

from services.common.errors import InvalidArgument, ItemError
from services.common.status import item_status
from services.lid.core import DEFAULT_MIN_LINE_TOKENS, METRICS, LanguageCheck, LanguageIdentifier, Prediction
from services.lid.pool import WorkerPool
from services.lid.wire import NestedEncoder

SLICE_BYTES = 32 * 1024  # text predicted between two yields to the event loop: ~10 ms on one core


def _prediction(p: Prediction) -> lid_pb2.LanguagePrediction:
    return lid_pb2.LanguagePrediction(
        language=p.language, script=p.script, raw_label=p.raw_label, probability=p.probability
    )


def slices(sizes: Sequence[int], budget: int = SLICE_BYTES) -> Iterator[tuple[int, int]]:
    """Consecutive [start, stop) ranges of items whose sizes add up to about `budget` (at least one item)."""
    start = total = 0
    for i, size in enumerate(sizes):
        total += size
        if total >= budget:
            yield start, i + 1
            start, total = i + 1, 0
    if start < len(sizes):
        yield start, len(sizes)


def _check_items(request: lid_pb2.CheckLanguageRequest) -> tuple[list[tuple[bytes | str, str]], set[int], set[int]]:
    """(text, expected language) per item for the core; the indexes sent as `string`; those with both
    `text` and `string` set, which are checked as empty and then failed naming `items[i].string`."""
    items: list[tuple[bytes | str, str]] = []
    strings: set[int] = set()
    conflicts: set[int] = set()
    for i, item in enumerate(request.items):
        text: bytes | str = item.text
        if item.string:
            strings.add(i)
            if text:
                conflicts.add(i)
                text = ""
            else:
                text = item.string
        items.append((text, item.expected_language))
    return items, strings, conflicts


def _fill_lcb(result: lid_pb2.LanguageCheckResult, check: LanguageCheck) -> None:
    if check.line_pass is not None:
        result.line_pass = check.line_pass
    if check.word_pass is not None:
        result.word_pass = check.word_pass
    if check.word_note:
        result.word_note = check.word_note
    add_line = result.lines.add
    for line in check.lines:
        add_line(
            text=line.text,
            language=line.language,
            raw_label=line.raw_label,
            probability=line.probability,
            passed=line.passed,
        )


class LidServicer(lid_pb2_grpc.LidServiceServicer):
    # Set by `wire.add_to_server`, whose serializer passes bytes through: nested responses are then
    # returned as wire bytes. Mounted with the generated `add_LidServiceServicer_to_server`, they are
    # parsed back into a message (the same reply, slower).
    wire_bytes = False

    def __init__(self, identifier: LanguageIdentifier, pool: WorkerPool | None = None):
        self.lid = identifier
        self.pool = pool  # worker processes that share large batches (None: this process alone)
        self._turn = asyncio.Lock()  # one batch at a time; waiters are served in arrival order
        self._nested = NestedEncoder(identifier.label_info, identifier.max_batch)

    async def _computed(self, method: str, items: Sequence, sizes: Sequence[int], **kwargs) -> list:
        """`self.lid.<method>(items, **kwargs)`, in slices of about `SLICE_BYTES` with a yield to the loop
        in between, one call at a time; shared with the worker processes when there are any (`pool.py`)."""
        compute = getattr(self.lid, method)

        async def here(a: int, b: int) -> list:
            out: list = []
            for start, stop in slices(sizes[a:b]):
                if start:
                    await asyncio.sleep(0)  # let the loop serve health checks and the transport
                out += compute(items[a + start : a + stop], start=a + start, **kwargs)
            return out

        async with self._turn:
            if self.pool is None:
                return await here(0, len(items))
            return await self.pool.run(method, items, sizes, here, kwargs)

    # ---- Identify ---------------------------------------------------------------------------------

    async def _identify(self, request: lid_pb2.IdentifyRequest, prefix: str = "") -> lid_pb2.IdentifyResponse | bytes:
        # `texts` (bytes) is the typed clients' path; `strings` is the same batch from JSON callers
        # (grpcurl). One cheap emptiness test is all the bytes path pays for it.
        if request.strings:
            if request.texts:
                raise InvalidArgument("set texts (UTF-8 bytes) or strings, not both", field=f"{prefix}strings")
            field, texts = "strings", list(request.strings)
        else:
            field, texts = "texts", list(request.texts)  # materialised once: each access makes a new object
        self.lid.check_batch(len(texts), prefix + field)
        k = self.lid.check_options(request.k, request.threshold)
        raw = await self._computed(
            "predict_raw",
            texts,
            [len(text) for text in texts],  # a str's length in characters: the slice budget stays approximate
            k=k,
            threshold=request.threshold,
            strip_role_markers=request.strip_role_markers,
            field=field,
        )
        if not request.compact:
            wire = self._nested.response(raw, request.batch_id, self.lid.name)
            return wire if self.wire_bytes else lid_pb2.IdentifyResponse.FromString(wire)
        response = lid_pb2.IdentifyResponse(batch_id=request.batch_id, model=self.lid.name)
        self._fill_compact(response, raw)
        return response

    def _fill_compact(self, response: lid_pb2.IdentifyResponse, raw: list) -> None:
        counts: list[int] = []
        label_ids: list[int] = []
        probabilities: list[float] = []
        table: dict[str, int] = {}
        add_error = response.results.add
        for i, item in enumerate(raw):
            if type(item) is InvalidArgument:
                counts.append(0)
                add_error(index=i, status=item_status(item))
                continue
            counts.append(len(item))
            for prob, label in item:
                label_id = table.get(label)
                if label_id is None:
                    label_id = table[label] = len(table)
                label_ids.append(label_id)
                probabilities.append(prob if prob < 1.0 else 1.0)
        compact = response.compact
        compact.counts.extend(counts)
        compact.label_ids.extend(label_ids)
        compact.probabilities.extend(probabilities)
        info = self.lid.label_info
        for label in table:
            language, script = info[label]
            compact.labels.add(language=language, script=script, raw_label=label)

    async def Identify(self, request, context):
        return await self._identify(request)

    async def IdentifyStream(self, request_iterator, context) -> AsyncIterator[lid_pb2.IdentifyResponse]:
        # One batch at a time per stream: gRPC flow control holds the client back meanwhile, so memory
        # stays bounded by one request and one response however long the stream. Item fields are
        # `texts[i]` within each batch; a whole batch over the limit is named `requests[n].texts` (or `.strings`).
        n = 0
        async for request in request_iterator:
            yield await self._identify(request, f"requests[{n}].")
            n += 1

    # ---- CheckLanguage ----------------------------------------------------------------------------

    async def _check(self, request: lid_pb2.CheckLanguageRequest) -> lid_pb2.CheckLanguageResponse:
        items, strings, conflicts = _check_items(request)
        self.lid.check_batch(len(items), "items")
        metric = request.metric or "share"
        checks = await self._computed(
            "check_language",
            items,
            [len(text) for text, _ in items],
            min_line_tokens=request.min_line_tokens or DEFAULT_MIN_LINE_TOKENS,
            strip_role_markers=request.strip_role_markers,
            metric=metric,
        )
        response = lid_pb2.CheckLanguageResponse()
        for check in checks:
            result = response.results.add(
                index=check.index,
                line_pass_rate=check.line_pass_rate,
                lines_checked=check.lines_checked,
                lines_passed=check.lines_passed,
                passed=check.passed,
                metric=check.metric,
            )
            if check.metric == "lcb":
                _fill_lcb(result, check)
            if check.detected is not None:
                result.detected.CopyFrom(_prediction(check.detected))
            if check.index in conflicts:
                error = ItemError("INVALID_ARGUMENT", "set text or string, not both", f"items[{check.index}].string")
                result.status.CopyFrom(item_status(error))
            elif check.error is not None:
                # The core's check errors are all bad input; its text already names the field (`.text`,
                # which the wire calls `.string` for an item sent as one).
                field = check.field
                if check.index in strings and field.endswith(".text"):
                    field = field.removesuffix(".text") + ".string"
                error = ItemError("INVALID_ARGUMENT", check.error.removeprefix(f"{check.field}: "), field)
                result.status.CopyFrom(item_status(error))
        return response

    async def CheckLanguage(self, request, context):
        if request.min_line_tokens < 0:
            raise InvalidArgument(f"must be >= 0, got {request.min_line_tokens}", field="min_line_tokens")
        if request.metric not in ("", *METRICS):
            raise InvalidArgument(f"unknown metric {request.metric!r}; use {' or '.join(METRICS)}", field="metric")
        return await self._check(request)

    # ---- GetModelInfo -----------------------------------------------------------------------------

    async def GetModelInfo(self, request, context):
        info = await asyncio.to_thread(self.lid.model_info)  # the first call hashes the file
        if self.pool is not None:
            info = dataclasses.replace(info, workers=self.pool.processes)
        fields = dataclasses.asdict(info)
        fields["languages"] = [lid_pb2.ModelLanguage(**language) for language in fields["languages"]]
        return lid_pb2.LidModelInfo(**fields)

    async def aclose(self) -> None:
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)

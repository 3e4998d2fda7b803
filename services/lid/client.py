"""Typed clients of the lid service; return the frozen dataclasses of `services.lid.core`, never protobufs.

    with LidClient("127.0.0.1:50051") as lid:
        lid.identify(["Hallo Welt"])[0].predictions[0].language      # "de"
        for results in lid.identify_stream(batches_of_lines):        # one list per batch, in order
            ...

Texts may be `str` or `bytes`; a `str` with lone surrogates is sent as its (invalid) UTF-8 bytes so that
the server reports that item alone instead of the client failing the batch. A failed item carries the
core's `error` text ("texts[3]: empty ...") and `field`, as in-process. `AsyncLidClient` is the asyncio
twin; both build requests and read replies with the functions here.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence

import grpc
from polyglot.v1 import lid_pb2, lid_pb2_grpc

from services.common.client import AsyncServiceClient, ServiceClient
from services.common.errors import InvalidArgument
from services.common.status import domain_error, item_error
from services.lid.core import (
    Identification,
    LanguageCheck,
    LineVerdict,
    ModelInfo,
    ModelLanguage,
    Prediction,
    Text,
    new_identification,
    new_line_verdict,
    new_prediction,
)


def _encode(texts: Sequence[Text], field: str = "texts") -> list[bytes]:
    try:  # all str: the usual case, one comprehension
        return [text.encode("utf-8", "surrogatepass") for text in texts]  # type: ignore[union-attr]
    except AttributeError:
        pass
    out = []
    for i, text in enumerate(texts):
        if type(text) is str:
            out.append(text.encode("utf-8", "surrogatepass"))
        elif isinstance(text, bytes | bytearray | memoryview):
            out.append(bytes(text))
        else:  # bytes(42) would quietly send 42 NULs
            raise InvalidArgument(f"expected str or bytes, got {type(text).__name__}", field=f"{field}[{i}]")
    return out


def _prediction(p: lid_pb2.LanguagePrediction) -> Prediction:
    return Prediction(p.language, p.script, p.raw_label, p.probability)


def _identifications(response: lid_pb2.IdentifyResponse) -> list[Identification]:
    """Dataclasses from a compact response (see `CompactPredictions` in lid.proto)."""
    compact = response.compact
    counts, label_ids, probabilities = list(compact.counts), list(compact.label_ids), list(compact.probabilities)
    labels = [(p.language, p.script, p.raw_label) for p in compact.labels]
    errors = {r.index: r.status for r in response.results}
    out: list[Identification] = []
    append = out.append
    j = 0
    for i, n in enumerate(counts):
        if n == 1:  # the common case, k=1
            append(new_identification(i, (new_prediction(*labels[label_ids[j]], probabilities[j]),)))
        elif n:
            append(
                new_identification(
                    i, tuple([new_prediction(*labels[label_ids[x]], probabilities[x]) for x in range(j, j + n)])
                )
            )
        elif i in errors and (error := item_error(errors[i])):
            append(Identification(i, (), str(error), error.field))
        else:  # nothing above the threshold
            append(Identification(i, ()))
        j += n
    return out


def identify_request(
    texts: Sequence[Text], k: int = 1, threshold: float = 0.0, strip_role_markers: bool = False, batch_id: str = ""
) -> lid_pb2.IdentifyRequest:
    return lid_pb2.IdentifyRequest(
        texts=_encode(texts),
        k=k,
        threshold=threshold,
        strip_role_markers=strip_role_markers,
        batch_id=batch_id,
        compact=True,
    )


def check_request(
    items: Sequence[tuple[Text, str]], min_line_tokens: int = 5, strip_role_markers: bool = False, metric: str = "share"
) -> lid_pb2.CheckLanguageRequest:
    return lid_pb2.CheckLanguageRequest(
        items=[
            lid_pb2.LanguageCheck(text=data, expected_language=lang)
            for data, (_, lang) in zip(_encode([text for text, _ in items], "items"), items, strict=True)
        ],
        min_line_tokens=min_line_tokens,
        strip_role_markers=strip_role_markers,
        metric=metric,
    )


def _line(v: lid_pb2.LineVerdict) -> LineVerdict:
    return new_line_verdict(v.text, v.language, v.raw_label, v.probability, v.passed)


def _check(r: lid_pb2.LanguageCheckResult) -> LanguageCheck:
    error = item_error(r.status)
    return LanguageCheck(
        index=r.index,
        line_pass_rate=r.line_pass_rate,
        lines_checked=r.lines_checked,
        lines_passed=r.lines_passed,
        detected=_prediction(r.detected) if r.HasField("detected") else None,
        passed=r.passed,
        error=str(error) if error else None,
        field=error.field if error else None,
        metric=r.metric or "share",
        line_pass=r.line_pass if r.HasField("line_pass") else None,
        word_pass=r.word_pass if r.HasField("word_pass") else None,
        lines=tuple([_line(v) for v in r.lines]),
        word_note=r.word_note or None,
    )


def checks(response: lid_pb2.CheckLanguageResponse) -> list[LanguageCheck]:
    return [_check(r) for r in response.results]


def model_info(info: lid_pb2.LidModelInfo) -> ModelInfo:
    fields = {field.name: getattr(info, field.name) for field in dataclasses.fields(ModelInfo)}
    fields["languages"] = tuple(ModelLanguage(m.raw_label, m.language, m.iso639_3, m.script) for m in info.languages)
    return ModelInfo(**fields)


class LidClient(ServiceClient):
    """Client of `polyglot.v1.LidService`. Domain errors (InvalidArgument, ...) raise as in-process."""

    stub_class = lid_pb2_grpc.LidServiceStub

    def identify(
        self,
        texts: Sequence[Text],
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
        *,
        timeout: float | None = None,
    ) -> list[Identification]:
        """Top-k languages per text, in order; a bad item carries `error` naming `texts[i]`.

        One call: a batch over the server's `max_batch_size` raises InvalidArgument (field `texts`);
        use `identify_stream` for more.
        """
        request = identify_request(texts, k, threshold, strip_role_markers)
        return _identifications(self.call("Identify", request, timeout=timeout))

    def identify_stream(
        self,
        batches: Iterable[Sequence[Text]],
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
        *,
        timeout: float | None = None,
    ) -> Iterator[list[Identification]]:
        """One list of identifications per input batch, in order, over one bidirectional stream.

        `batches` is consumed lazily, as the server keeps up, so a pipeline can push millions of lines
        without holding them. Indices are positions within each batch. No deadline unless `timeout` is
        given (a long job is the point), and no retries mid-stream.
        """
        requests = (
            identify_request(batch, k, threshold, strip_role_markers, str(n)) for n, batch in enumerate(batches)
        )
        responses = self.stub.IdentifyStream(requests, timeout=timeout)
        try:
            for response in responses:
                yield _identifications(response)
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc
        finally:
            responses.cancel()

    def check_language(
        self,
        items: Sequence[tuple[Text, str]],
        min_line_tokens: int = 5,
        strip_role_markers: bool = False,
        *,
        metric: str = "share",
        timeout: float | None = None,
    ) -> list[LanguageCheck]:
        """Per (text, expected language code): line pass rate and whole-text verdict (`metric="share"`),
        or the Language Confusion Benchmark's line and word pass with each kept line (`metric="lcb"`).

        `min_line_tokens=0` means the default, 5 (proto3 cannot tell 0 from unset); use 1 to check every line.
        """
        request = check_request(items, min_line_tokens, strip_role_markers, metric)
        return checks(self.call("CheckLanguage", request, timeout=timeout))

    def check_language_batches(
        self,
        batches: Iterable[Sequence[tuple[Text, str]]],
        min_line_tokens: int = 5,
        strip_role_markers: bool = False,
        *,
        metric: str = "share",
        in_flight: int = 2,
        timeout: float | None = None,
    ) -> Iterator[list[LanguageCheck]]:
        """`check_language` of each batch, in order, with `in_flight` calls outstanding: the server checks
        one batch while this client sends the next and reads the last, so a big job runs at the speed of
        the in-process check (bench/results/lid_lcb.md). Batches are consumed lazily; indices are
        positions within each batch. No retries (a failed call raises its domain error)."""
        if in_flight < 1:
            raise InvalidArgument(f"must be >= 1, got {in_flight}", field="in_flight")
        deadline = timeout if timeout is not None else self.timeout
        method = self.stub.CheckLanguage
        pending: collections.deque = collections.deque()

        def done(future) -> list[LanguageCheck]:
            try:
                return checks(future.result())
            except grpc.RpcError as exc:
                raise domain_error(exc) from exc

        try:
            for batch in batches:
                request = check_request(batch, min_line_tokens, strip_role_markers, metric)
                pending.append(method.future(request, timeout=deadline))
                if len(pending) >= in_flight:
                    yield done(pending.popleft())
            while pending:
                yield done(pending.popleft())
        finally:
            for future in pending:
                future.cancel()

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return model_info(self.call("GetModelInfo", lid_pb2.GetModelInfoRequest(), timeout=timeout))


class AsyncLidClient(AsyncServiceClient):
    """`LidClient` for asyncio (the judge's language gate)."""

    stub_class = lid_pb2_grpc.LidServiceStub

    async def identify(
        self,
        texts: Sequence[Text],
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
        *,
        timeout: float | None = None,
    ) -> list[Identification]:
        request = identify_request(texts, k, threshold, strip_role_markers)
        return _identifications(await self.call("Identify", request, timeout=timeout))

    async def identify_stream(
        self,
        batches: AsyncIterable[Sequence[Text]],
        k: int = 1,
        threshold: float = 0.0,
        strip_role_markers: bool = False,
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[list[Identification]]:
        async def requests():
            n = 0
            async for batch in batches:
                yield identify_request(batch, k, threshold, strip_role_markers, str(n))
                n += 1

        call = self.stub.IdentifyStream(requests(), timeout=timeout)
        try:
            async for response in call:
                yield _identifications(response)
        except grpc.RpcError as exc:
            raise domain_error(exc) from exc
        finally:
            call.cancel()

    async def check_language(
        self,
        items: Sequence[tuple[Text, str]],
        min_line_tokens: int = 5,
        strip_role_markers: bool = False,
        *,
        metric: str = "share",
        timeout: float | None = None,
    ) -> list[LanguageCheck]:
        request = check_request(items, min_line_tokens, strip_role_markers, metric)
        return checks(await self.call("CheckLanguage", request, timeout=timeout))

    async def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return model_info(await self.call("GetModelInfo", lid_pb2.GetModelInfoRequest(), timeout=timeout))

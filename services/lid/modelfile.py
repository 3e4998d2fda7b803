"""Read and check the header of a fastText model file before the C++ loader sees it.

fastText 0.9.2's loader trusts the file: on a truncated file it loops forever reading the dictionary
while its memory grows (measured: 1 GB in 30 s), and a file cut near its end loads silently and
predicts garbage. So a model is walked here first, structure by structure, and must end exactly where
the file ends. The walk also yields what the predict-only binding (`fasttext-predict`) cannot tell:
the label list, hence the label scheme (lid.176, OpenLID, GlotLID).

Layout (fastText 0.9.2, `FastText::saveModel`): magic, version; Args (12 int32 + 1 double);
Dictionary (size, nwords, nlabels: int32; ntokens, pruneidx_size: int64; entries of
`word\\0, count: int64, type: int8`; pruneidx pairs); quant flag; input matrix; qout flag; output matrix.
A dense matrix is `m, n: int64` + m*n float32; a quantised one is `qnorm: bool, m, n: int64,
codesize: int32, codes, ProductQuantizer[, norm codes, norm ProductQuantizer]`.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import FailedPrecondition, NotFound

MAGIC = 793712314
MAX_VERSION = 12
SUPERVISED = 3  # fastText's model_name::sup
LABEL_PREFIX = "__label__"
_KSUB = 256  # centroids per product-quantizer sub-space (fixed in fastText)
# OpenLID has 201 labels (v2: 200); GlotLID v3 has over 2,000. Both use ISO 639-3 + script labels.
_OPENLID_MAX_LABELS = 250
_SCRIPTED = re.compile(r"^[a-z]{2,3}_[A-Z][a-z]{3}$")
_BARE_ISO = re.compile(r"^[a-z]{2,3}(?:[-_][a-z]+)?$")


class CorruptModel(FailedPrecondition):
    """The file exists but is not a complete fastText supervised model."""


@dataclass(frozen=True)
class ModelHeader:
    path: Path
    version: int
    dim: int
    nwords: int
    labels: tuple[str, ...]  # raw, with the `__label__` prefix, in the model's order
    quantized: bool
    size_bytes: int

    @property
    def label_scheme(self) -> str:
        return label_scheme(self.labels)


def label_scheme(labels: tuple[str, ...] | list[str]) -> str:
    """`lid176` for bare ISO codes (`__label__de`), `openlid`/`glotlid` for ISO 639-3 + script
    (`__label__deu_Latn`, told apart by size), `custom` otherwise."""
    bare = [label.removeprefix(LABEL_PREFIX) for label in labels]
    if not bare:
        return "custom"
    scripted = sum(bool(_SCRIPTED.match(b)) for b in bare)
    if scripted >= 0.9 * len(bare):
        return "openlid" if len(bare) <= _OPENLID_MAX_LABELS else "glotlid"
    if sum(bool(_BARE_ISO.match(b)) for b in bare) >= 0.9 * len(bare):
        return "lid176"
    return "custom"


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str, what: str = "the header") -> tuple:
        size = struct.calcsize(fmt)
        self.need(size, what)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def skip(self, size: int, what: str) -> None:
        if size < 0:
            raise self.corrupt(f"negative size for {what}")
        self.need(size, what)
        self.pos += size

    def need(self, size: int, what: str) -> None:
        if self.pos + size > len(self.buf):
            raise self.corrupt(f"file ends inside {what} (truncated?)")

    def cstring(self) -> bytes:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise self.corrupt("file ends inside the dictionary (truncated?)")
        word = self.buf[self.pos : end]
        self.pos = end + 1
        return bytes(word)

    def corrupt(self, why: str) -> CorruptModel:
        return CorruptModel(f"{self.path} is not a usable fastText model: {why}", field="model")


def _skip_matrix(r: _Reader, quantized: bool, what: str) -> tuple[int, int]:
    if not quantized:
        m, n = r.take("<qq", f"the {what} matrix")
        if m < 0 or n < 0:
            raise r.corrupt(f"negative shape in the {what} matrix")
        r.skip(4 * m * n, f"the {what} matrix")
        return m, n
    (qnorm,) = r.take("<?", f"the {what} matrix")
    m, n, codesize = r.take("<qqi", f"the {what} matrix")
    r.skip(codesize, f"the {what} matrix codes")
    _skip_pq(r, what)
    if qnorm:
        r.skip(m, f"the {what} matrix norms")
        _skip_pq(r, what)
    return m, n


def _skip_pq(r: _Reader, what: str) -> None:
    dim, nsubq, dsub, lastdsub = r.take("<iiii", f"the {what} quantizer")
    if min(dim, nsubq, dsub, lastdsub) < 0:
        raise r.corrupt(f"negative size in the {what} quantizer")
    r.skip(4 * dim * _KSUB, f"the {what} quantizer centroids")


def read_header(path: str | Path) -> ModelHeader:
    """Walk the whole model file; raise NotFound (missing) or CorruptModel (anything else wrong)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist", field="model") from None
    except IsADirectoryError:
        raise CorruptModel(f"model path {path} is a directory, not a fastText model file", field="model") from None
    except OSError as exc:
        raise CorruptModel(f"cannot open model file {path}: {exc.strerror}", field="model") from None
    with handle:
        size = path.stat().st_size
        if size < 8:
            raise CorruptModel(f"{path} is not a fastText model: only {size} bytes", field="model")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _walk(_Reader(buf, path), size)


def _walk(r: _Reader, size: int) -> ModelHeader:
    magic, version = r.take("<ii")
    if magic != MAGIC or not 11 <= version <= MAX_VERSION:
        raise r.corrupt("wrong magic number or version (not a fastText .bin/.ftz file)")
    dim, _ws, _epoch, _min_count, _neg, _ngrams, _loss, model, bucket, _minn, _maxn, _lr_update, _t = r.take("<12id")
    if model != SUPERVISED:
        raise r.corrupt("an unsupervised (word-vector) model, not a classifier")
    if dim <= 0 or bucket < 0:
        raise r.corrupt("impossible dimensions in the model arguments")
    n_entries, nwords, nlabels, _ntokens, prune_size = r.take("<iiiqq")
    if nlabels <= 0 or nwords < 0 or nwords + nlabels != n_entries:
        raise r.corrupt(f"inconsistent dictionary sizes ({n_entries} entries, {nwords} words, {nlabels} labels)")
    labels: list[str] = []
    for _ in range(n_entries):
        word = r.cstring()
        _count, kind = r.take("<qb", "the dictionary")
        if kind == 1:
            labels.append(word.decode("utf-8", "replace"))
    if len(labels) != nlabels:
        raise r.corrupt(f"dictionary holds {len(labels)} labels, header says {nlabels}")
    if prune_size > 0:
        r.skip(8 * prune_size, "the pruned-word index")
    (quant_input,) = r.take("<?", "the input matrix")
    if not quant_input and prune_size >= 0:
        raise r.corrupt("a pruned dictionary with an unquantized matrix")
    _in_rows, in_dim = _skip_matrix(r, quant_input, "input")
    (qout,) = r.take("<?", "the output matrix")
    out_rows, out_dim = _skip_matrix(r, quant_input and qout, "output")
    if in_dim != dim or out_dim != dim or out_rows != nlabels:
        raise r.corrupt("matrix shapes do not match the dictionary")
    if r.pos != size:
        raise r.corrupt(f"{size - r.pos} unexpected bytes after the output matrix")
    return ModelHeader(
        path=r.path,
        version=version,
        dim=dim,
        nwords=nwords,
        labels=tuple(labels),
        quantized=bool(quant_input),
        size_bytes=size,
    )

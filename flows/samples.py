"""Sample logs: what each shard's step had in hand for every item, to read when a number looks wrong.

Each shard writes `<result key>.samples.jsonl` (`flows.keys.shard_samples`) before its result file. A line
is the item's result record (identity, metrics, outcome) plus what its task's step saw: prompt, forced
prefix, reply, finish reason and token counts for generations; the choices and their log-likelihoods for
log-likelihood tasks; language labels, the line-level check and the judge's record for chat.

`polyglot samples` reads them back, filtered; the report copies each cell's samples beside it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from flows import keys
from flows.aggregate import Group, cell_slug
from flows.config import StudyConfig
from services.common.store import ArtifactStore
from services.common.store.base import write_file_atomically

__all__ = ["FILTERS", "copy_cell_samples", "dumps_samples", "find_samples", "read_samples", "samples_table"]

FILTERS = ("base_model", "mix", "task", "language", "outcome", "seed")  # the fields `polyglot samples` filters on
_GROUP = ("base_model", "mix", "task", "variant", "language")  # a report cell (flows.aggregate.Group)
_REPLY_CHARS = 80  # a table shows the start of each reply; --json has all of it


def dumps_samples(samples: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON Lines; a log-likelihood of -inf is written as Python's json writes it (`-Infinity`)."""
    lines = (json.dumps(s, ensure_ascii=False, separators=(",", ":")) for s in samples)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def read_samples(store: ArtifactStore, shard_keys: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """The samples of the given shards (result keys), or of every shard in the store. Shards written
    before sample logs existed have none and are skipped."""
    if shard_keys is None:
        sample_keys = sorted(o.key for o in store.list("results/") if keys.is_shard_samples(o.key))
    else:
        sample_keys = [k for k in map(keys.shard_samples, shard_keys) if store.exists(k)]
    for key in sample_keys:
        # "\n" only: a reply may hold U+2028 or U+0085, which json writes raw and splitlines() splits on.
        for line in store.get_bytes(key).decode("utf-8").split("\n"):
            if line.strip():
                yield json.loads(line)


def find_samples(
    store: ArtifactStore, cfg: StudyConfig | None = None, **wanted: Collection[Any] | None
) -> list[dict[str, Any]]:
    """Samples in the store whose fields are among the wanted values (`FILTERS`; None or empty = any).

    With a study config, only its base models, mixes, tasks and seeds: a store that several studies
    share holds the shards of all of them.
    """
    unknown = set(wanted) - set(FILTERS)
    if unknown:
        raise ValueError(f"cannot filter samples on {sorted(unknown)}; fields: {', '.join(FILTERS)}")
    grid: dict[str, Collection[Any]] = {}
    if cfg is not None:
        grid = {
            "base_model": [m.name for m in cfg.base_models],
            "mix": [*cfg.data.mixes.build, *(m.name for m in cfg.evaluate_models)],  # `polyglot eval`'s too
            "task": list(cfg.evaluation.tasks),
            "seed": cfg.seeds,
        }
    filters = [(name, {str(v) for v in values}) for name, values in [*grid.items(), *wanted.items()] if values]
    return [s for s in read_samples(store) if all(str(s.get(name)) in values for name, values in filters)]


def samples_table(samples: Iterable[Mapping[str, Any]]) -> Table:
    table = Table("model", "mix", "task", "lang", "seed", "item", "outcome", "metrics", "reply", title="Samples")
    for s in samples:
        task = f"{s['task']} {s['variant']}".strip()
        metrics = " ".join(f"{name}={value:g}" for name, value in s["metrics"].items())
        reply = str(s.get("reply", "")).replace("\n", " ")
        reply = reply if len(reply) <= _REPLY_CHARS else reply[: _REPLY_CHARS - 1] + "…"
        row = (s["base_model"], s["mix"], task, s["language"], str(s["seed"]), s["item_id"], s["outcome"])
        table.add_row(*row, metrics, reply)
    return table


def copy_cell_samples(store: ArtifactStore, shard_keys: Iterable[str], out_dir: Path) -> dict[Group, str]:
    """Write each report cell's samples (all seeds) to `samples/<cell>.jsonl` under out_dir; return each
    cell's path relative to out_dir, which is what the report links to."""
    cells: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for sample in read_samples(store, shard_keys):
        cells[tuple(sample[name] for name in _GROUP)].append(sample)
    links = {}
    for group, samples in sorted(cells.items()):
        relative = f"samples/{cell_slug(*group)}.jsonl"
        samples.sort(key=lambda s: (s["seed"], s["item_id"]))
        write_file_atomically(out_dir / relative, [dumps_samples(samples)])
        links[group] = relative
    return links

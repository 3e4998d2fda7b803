"""`report.compare_with`: the paper's Fig. 7 (Llama 2 70B over 7B) across two studies.

The paper's 7B and 70B runs are separate configs, so neither study alone holds both base model sizes. A
study that names the other's config file draws the overlay with the other's rows joined in:

    # configs/paper-llama2-7b.yaml (or: polyglot study run ... --set report.compare_with=paper-llama2-70b.yaml)
    report:
      compare_with: paper-llama2-70b.yaml   # relative to this file

The other study's config gives its base models (sizes as `polyglot plan` estimates them) and its artifact
store; its newest aggregate there (`aggregates/<study>/`, flows/keys.py) gives its rows, which join this
study's by (task, variant, metric, mix, language). A base model named as one of this study's is shown as
`<name> (<other study>)`. No aggregate there: `study run` exits 2 before any work, naming the field.

    other = paper_compare.other_study(cfg)   # None without report.compare_with
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from flows import keys
from flows.aggregate import Aggregate, SummaryRow
from flows.config import StudyConfig, load_config
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.store import ArtifactStore, ObjectInfo, open_store, retrying

FIELD = "report.compare_with"


@dataclass(frozen=True)
class OtherStudy:
    """The compared study: its name, where its aggregate is, its base model sizes and its rows (base models
    renamed where they clash with this study's)."""

    name: str
    aggregate_uri: str
    sizes: dict[str, float]
    rows: list[SummaryRow]
    pipeline_check: bool


def model_sizes(cfg: StudyConfig) -> dict[str, float]:
    """Billions of parameters per base model name, as `polyglot plan` estimates them."""
    from flows.plan import Assumptions, estimate_params_b

    return {m.name: estimate_params_b(m, Assumptions())[0] for m in cfg.base_models}


def _other_config(path: Path) -> StudyConfig:
    try:
        return load_config(path)
    except InvalidArgument as exc:  # ConfigError: unreadable or invalid
        raise InvalidArgument(f"{path}: {exc}", field=FIELD) from None


def newest_aggregate(cfg: StudyConfig) -> tuple[StudyConfig, ArtifactStore, ObjectInfo] | None:
    """The compared study's config, store and newest aggregate; None without `report.compare_with`.
    Raises InvalidArgument (bad config file) or FailedPrecondition (no aggregate yet), naming the field."""
    path = cfg.report.compare_with
    if path is None:
        return None
    other = _other_config(path)
    store = retrying(open_store(other.artifact_store))
    # The study's aggregates directory, as flows/keys.py names it (the key of an aggregate of no shards).
    prefix = keys.aggregate_key(other, []).rpartition("/")[0] + "/"
    found = [o for o in store.list(prefix) if o.key.endswith(".json") and "/" not in o.key[len(prefix) :]]
    if not found:
        raise FailedPrecondition(
            f"study {other.name!r} ({path}) has no aggregate in {store.uri(prefix)}; run it first "
            f"(`polyglot study run {path}`) or drop the field",
            field=FIELD,
        )
    return other, store, max(found, key=lambda o: (o.modified, o.key))


def other_study(
    cfg: StudyConfig, found: tuple[StudyConfig, ArtifactStore, ObjectInfo] | None = None
) -> OtherStudy | None:
    """The study `report.compare_with` names, its rows ready to join this study's; None without the field.
    `found`: `newest_aggregate(cfg)` when the caller has it already (the report's key names that aggregate)."""
    found = found or newest_aggregate(cfg)
    if found is None:
        return None
    other, store, newest = found
    ours = {m.name for m in cfg.base_models}
    names = {m.name: f"{m.name} ({other.name})" if m.name in ours else m.name for m in other.base_models}
    rows = [
        dataclasses.replace(row, base_model=names[row.base_model])
        for row in Aggregate.from_json(store.get_json(newest.key)).rows
        if row.base_model in names  # an evaluate_models entry has no size to compare by
    ]
    sizes = {names[name]: size for name, size in model_sizes(other).items()}
    return OtherStudy(other.name, newest.uri, sizes, rows, other.is_pipeline_check)

"""Build the study's datasets into the artifact store: labelled conversations, tuning mixes, eval sets.

Keys and the identities behind them come from `flows.keys` (docs/artifact-keys.md): each artifact lives
under `<kind>/<name>/<hash>/`, the hash taken over everything that determines its content. A manifest
written after the data marks it complete, so a second build finds every manifest and does nothing; a
changed input changes only the keys that depend on it.

    datasets/labelled/<h>/rows.jsonl         every conversation with its top LID label and confidence
    datasets/<mix>/<h>/data.jsonl            a tuning mix: {"text", "lang", "id", "lid_prob", "origin"}
    evalsets/<task>/<lang>/<h>/items.jsonl   EvalItem records
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flows import keys
from flows.config import DataConfig, EvaluationConfig, MixSpec, StudyConfig
from flows.data.labelling import LabelledConversation, Labeller, label_conversations, language_counts
from flows.data.manifest import MANIFEST, DatasetManifest
from flows.data.mixes import MixPlanner, mix_rows, read_mono_ids
from flows.data.sources import ConversationSet, load_conversations
from flows.data.translation import Translator, translate_conversations
from flows.evals import TASKS, EvalItem, dumps_items, loads_items
from services.common.errors import FailedPrecondition
from services.common.store import ArtifactStore


class Reporter(Protocol):
    """Progress callbacks; the CLI draws them as rich progress bars."""

    def begin(self, name: str, total: int | None) -> None: ...
    def advance(self, name: str, amount: int = 1) -> None: ...
    def end(self, name: str, status: str) -> None: ...


class NullReporter:
    def begin(self, name: str, total: int | None) -> None:
        pass

    def advance(self, name: str, amount: int = 1) -> None:
        pass

    def end(self, name: str, status: str) -> None:
        pass


@dataclass(frozen=True)
class Built:
    """One artifact in the store; `built` is False when it was already there."""

    manifest: DatasetManifest
    uri: str  # URI of the data file (what the trainer / evaluator reads)
    built: bool

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def key(self) -> str:
        return self.manifest.key

    @property
    def data_key(self) -> str:
        return f"{self.manifest.key}/{self.manifest.data}"


def jsonl_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Stable jsonl: sorted keys, compact, UTF-8 as is."""
    lines = (json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for r in records)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _existing(store: ArtifactStore, key: str) -> DatasetManifest | None:
    manifest_key = f"{key}/{MANIFEST}"
    if not store.exists(manifest_key):
        return None
    return DatasetManifest.model_validate(store.get_json(manifest_key))


def _write(store: ArtifactStore, data: bytes, **fields: Any) -> Built:
    """Data first, manifest last: the manifest's presence says the artifact is complete."""
    key, name = fields["key"], fields.pop("data_name")
    info = store.put_bytes(f"{key}/{name}", data)
    manifest = DatasetManifest(data=name, data_sha256=info.sha256, **fields)
    store.put_json(f"{key}/{MANIFEST}", manifest.to_json())
    return Built(manifest, info.uri, True)


def _found(store: ArtifactStore, manifest: DatasetManifest) -> Built:
    return Built(manifest, store.uri(f"{manifest.key}/{manifest.data}"), False)


class MixBuilder:
    """Labels the conversation source once and builds every mix the recipe lists."""

    def __init__(
        self,
        data: DataConfig,
        store: ArtifactStore,
        labeller: Labeller,
        translator: Translator | None = None,
        reporter: Reporter | None = None,
        conversations: ConversationSet | None = None,
    ):
        self.data = data
        self.recipe = data.mixes
        self.store = store
        self.labeller = labeller
        self.translator = translator
        self.reporter = reporter or NullReporter()
        self.conversations = conversations or load_conversations(data.conversations)

    # -- identities -------------------------------------------------------------------------------

    def labelled_identity(self) -> dict[str, Any]:
        return keys.labelled_identity(self.conversations.sha256, self.labeller.model)

    def mix_identity(self, spec: MixSpec) -> dict[str, Any]:
        translator = self.translator.model if self.translator else None
        return keys.mix_identity(self.data, spec, self.labelled_identity(), translator)

    def mix_key(self, spec: MixSpec) -> str:
        return keys.mix_key(spec, self.mix_identity(spec))[0]

    # -- building ---------------------------------------------------------------------------------

    def labelled(self) -> list[LabelledConversation]:
        """The labelled source from the store, or labelled now (through the labeller) and stored."""
        key, digest = keys.labelled_key(self.labelled_identity())
        name = "label conversations"
        if (manifest := _existing(self.store, key)) is not None:
            self.reporter.end(name, "skipped")
            records = (json.loads(line) for line in self.store.get_bytes(f"{key}/{manifest.data}").splitlines())
            return [LabelledConversation(r["id"], r["text"], r["lang"], r["prob"], r["source_lang"]) for r in records]
        self.reporter.begin(name, len(self.conversations))
        rows = label_conversations(
            self.conversations.conversations, self.labeller, lambda n: self.reporter.advance(name, n)
        )
        records = (
            {"id": r.id, "text": r.text, "lang": r.lang, "prob": r.prob, "source_lang": r.source_lang} for r in rows
        )
        _write(
            self.store,
            jsonl_bytes(records),
            data_name="rows.jsonl",
            kind="labelled",
            name="labelled",
            key=key,
            rows=len(rows),
            counts=language_counts(rows),
            inputs_sha256=digest,
            version=keys.DATA_VERSION,
            source=self.conversations.source,
            source_sha256=self.conversations.sha256,
            incomplete=self.conversations.incomplete,
            lid_model=self.labeller.model,
        )
        self.reporter.end(name, "built")
        return rows

    def build(self) -> list[Built]:
        specs = self.recipe.specs()
        found = {spec.name: _existing(self.store, self.mix_key(spec)) for spec in specs}
        pending = [spec for spec in specs if found[spec.name] is None]
        for spec in specs:
            if found[spec.name] is not None:
                self.reporter.end(spec.name, "skipped")
        if any(spec.machine_translated for spec in pending) and self.translator is None:
            names = [s.name for s in pending if s.machine_translated]
            raise FailedPrecondition(f"{', '.join(names)} need the judge service's Translate", field="data.mixes.build")
        results: dict[str, Built] = {name: _found(self.store, m) for name, m in found.items() if m is not None}
        if pending:
            planner = MixPlanner(
                self.labelled(), self.recipe, self.data.lid_threshold, self.data.lid_filter_full,
                mono_ids=read_mono_ids(self.recipe.mono_ids),
            )
            planner.check(pending)  # every shortfall, named, before any mix is written
            for spec in pending:
                results[spec.name] = self._build_mix(planner, spec)
        return [results[spec.name] for spec in specs]

    def _build_mix(self, planner: MixPlanner, spec: MixSpec) -> Built:
        plan = planner.plan(spec)
        self.reporter.begin(spec.name, plan.size)
        translations = {}
        for lang, sources in plan.to_translate.items():
            assert self.translator is not None
            translations[lang] = translate_conversations([r.text for r in sources], self.translator, lang)
            self.reporter.advance(spec.name, len(sources))
        rows = mix_rows(plan, self.recipe.seed, translations)
        key, digest = keys.mix_key(spec, self.mix_identity(spec))
        recipe = {k: v for k, v in self.mix_identity(spec).items() if k in ("n", "k", "languages")}
        built = _write(
            self.store,
            jsonl_bytes(row.to_json() for row in rows),
            data_name="data.jsonl",
            kind="mix",
            name=spec.name,
            key=key,
            rows=len(rows),
            counts=dict(sorted(Counter(r.lang for r in rows).items(), key=lambda kv: (-kv[1], kv[0]))),
            counts_by_origin=dict(sorted(Counter(r.origin for r in rows).items())),
            inputs_sha256=digest,
            version=keys.DATA_VERSION,
            seed=self.recipe.seed,
            recipe=recipe,
            source=self.conversations.source,
            source_sha256=self.conversations.sha256,
            lid_model=self.labeller.model,
            lid_threshold=None if plan.others and not self.data.lid_filter_full else self.data.lid_threshold,
            translator=self.translator.model if spec.machine_translated and self.translator else "",
        )
        self.reporter.advance(spec.name, plan.size - sum(map(len, plan.to_translate.values())))
        self.reporter.end(spec.name, "built")
        return built


class EvalSetBuilder:
    """Builds one eval set per configured task × language."""

    def __init__(
        self,
        evaluation: EvaluationConfig,
        store: ArtifactStore,
        translator: Translator | None = None,
        reporter: Reporter | None = None,
    ):
        self.evaluation = evaluation
        self.store = store
        self.translator = translator
        self.reporter = reporter or NullReporter()

    def identity(self, task_name: str, language: str) -> dict[str, Any]:
        translator = self.translator.model if self.translator else ""
        return keys.eval_set_identity(self.evaluation, task_name, language, translator)

    def key(self, task_name: str, language: str) -> tuple[str, str]:
        return keys.eval_set_key(task_name, language, self.identity(task_name, language))

    def build(self) -> list[Built]:
        results = []
        for task_name, config in self.evaluation.tasks.items():
            for language in config.languages:
                results.append(self._build_one(task_name, config, language))
        return results

    def _build_one(self, task_name: str, config: Any, language: str) -> Built:
        name = f"{task_name}/{language}"
        identity = self.identity(task_name, language)
        key, digest = keys.eval_set_key(task_name, language, identity)
        if (manifest := _existing(self.store, key)) is not None:
            self.reporter.end(name, "skipped")
            return _found(self.store, manifest)
        self.reporter.begin(name, None)
        items = TASKS.get(task_name).build_items(
            config, language, seed=self.evaluation.sample_seed, translator=self.translator, store=self.store
        )
        translated = any(item.source.endswith("mt") for item in items)
        built = _write(
            self.store,
            dumps_items(items),
            data_name="items.jsonl",
            kind="evalset",
            name=name,
            key=key,
            rows=len(items),
            counts={language: len(items)},
            inputs_sha256=digest,
            version=keys.EVAL_VERSION,
            seed=self.evaluation.sample_seed,
            translator=self.translator.model if translated and self.translator else "",
            task=task_name,
            language=language,
            inputs=identity["inputs"],
        )
        self.reporter.end(name, "built")
        return built


def build_mixes(
    data: DataConfig,
    store: ArtifactStore,
    labeller: Labeller,
    translator: Translator | None = None,
    reporter: Reporter | None = None,
) -> list[Built]:
    """Every mix in `data.mixes.build`, in that order; already-built ones are found, not rebuilt."""
    return MixBuilder(data, store, labeller, translator, reporter).build()


def build_eval_sets(
    evaluation: EvaluationConfig,
    store: ArtifactStore,
    translator: Translator | None = None,
    reporter: Reporter | None = None,
) -> list[Built]:
    """One eval set per configured task × language; already-built ones are found, not rebuilt."""
    return EvalSetBuilder(evaluation, store, translator, reporter).build()


def build_study_data(
    study: StudyConfig,
    store: ArtifactStore,
    labeller: Labeller,
    translator: Translator | None = None,
    reporter: Reporter | None = None,
) -> dict[str, list[Built]]:
    """The mixes and eval sets of a study: `{"mixes": [...], "evalsets": [...]}`."""
    return {
        "mixes": build_mixes(study.data, store, labeller, translator, reporter),
        "evalsets": build_eval_sets(study.evaluation, store, translator, reporter),
    }


def read_mix(store: ArtifactStore, built: Built | str) -> list[dict[str, Any]]:
    """The rows of a built mix (a `Built` or its data key)."""
    key = built.data_key if isinstance(built, Built) else built
    return [json.loads(line) for line in store.get_bytes(key).splitlines() if line.strip()]


def read_eval_set(store: ArtifactStore, built: Built | str) -> list[EvalItem]:
    """The items of a built eval set (a `Built` or its data key)."""
    key = built.data_key if isinstance(built, Built) else built
    return loads_items(store.get_bytes(key))

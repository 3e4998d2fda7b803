"""The judge as one object: settings, providers, cache, usage account, templates, grader, translator.

No gRPC here (the servicer maps messages; the lid and generator adapters live at the edge and are passed
in or imported by name). Tests and flows can drive a `Judge` in-process exactly as the service does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.common.store import ArtifactStore
from services.judge.cache import ReplyCache
from services.judge.grading import Grader
from services.judge.prompts import TemplateLibrary
from services.judge.providers import ProviderPool
from services.judge.records import Graded, GradeJob, GradeRecord, LanguageIdentifier, Translated
from services.judge.settings import JudgeSettings
from services.judge.translation import TranslateJob, Translator
from services.judge.usage import Usage, UsageBook, check_run_id


def template_roots(settings: JudgeSettings, store: ArtifactStore | None) -> list[str]:
    """Where a template URI may point: the configured roots, the judge's store (its data) and template_dir."""
    roots = list(settings.template_roots)
    if store is not None:
        roots.append(store.uri(""))
    if settings.template_dir is not None:
        roots.append(str(settings.template_dir))
    return roots


class Judge:
    def __init__(
        self,
        settings: JudgeSettings,
        store: ArtifactStore | None = None,
        identifier: LanguageIdentifier | None = None,
    ):
        self.settings = settings
        self.store = store
        self.providers = ProviderPool(settings)
        self.cache = (
            ReplyCache(
                store, settings.cache_prefix, attempts=settings.store_attempts, max_unsaved=settings.max_unsaved_replies
            )
            if store is not None and settings.cache
            else None
        )
        self.usage = UsageBook(
            settings.prices,
            store,
            settings.cache_prefix,
            budget_usd=settings.budget_usd,
            budgets=settings.budgets,
            total_budget_usd=settings.total_budget_usd,
            attempts=settings.store_attempts,
        )
        self.templates = TemplateLibrary(
            settings.template_dir, template_roots(settings, store), settings.max_template_bytes
        )
        self.translator = Translator(settings, self.providers, self.cache, self.usage, self.templates)
        self.grader = Grader(
            settings, self.providers, self.cache, self.usage, self.templates, self.translator, identifier
        )
        self.identifier = identifier

    def grade_stream(self, job: GradeJob, call_usage: Usage | None = None) -> AsyncIterator[GradeRecord]:
        """Records as items finish (any order; each carries its `index`); the call's account goes to `call_usage`."""
        return self.grader.grade(job, call_usage)

    async def grade(self, job: GradeJob) -> Graded:
        """All records, in item order, with this call's account."""
        usage = Usage()
        stream = self.grader.grade(job, usage)
        try:
            records = [record async for record in stream]
        finally:
            await stream.aclose()
        return Graded(sorted(records, key=lambda r: r.index), usage)

    async def translate(self, job: TranslateJob) -> Translated:
        usage = Usage()
        records = await self.translator.translate(job, usage)
        return Translated(records, usage)

    async def get_usage(self, run_id: str = "") -> Usage:
        return await self.usage.get(check_run_id(run_id))

    async def aclose(self) -> None:
        await self.providers.aclose()
        closer = getattr(self.identifier, "aclose", None)
        if closer is not None:
            await closer()

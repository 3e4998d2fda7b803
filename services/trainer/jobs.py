"""Jobs: submitted once per idempotency key, run one worker per attempt, persisted across restarts.

Life of a job: QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED. Every change is written to
`<state_dir>/jobs/<id>/job.json` (atomically) before anyone is told, so a restarted service reloads
exactly what its clients last saw.

Restarts and resubmission:
- Submitting again with the same idempotency key returns the same job. If that job FAILED (its worker
  crashed or was killed) or was CANCELLED, it is queued again and its next attempt resumes from the last
  checkpoint in the artifact store; the step count continues. A different spec under a used key is refused.
- Jobs that were RUNNING when the service stopped (SIGTERM, or a crash) are, by default, queued again on the
  next start and resume from their checkpoint (`resume_on_restart`); with `resume_on_restart=false` they are
  marked FAILED with the reason, and resubmitting them resumes them. Local workers never outlive the service:
  each watches the service's pid and exits when it is gone, so no job trains twice.

Concurrency: up to `max_concurrent_jobs` attempts run at once, oldest queued first; each gets its own devices
from the launcher (`launch.py`: the `local` launcher hands out disjoint GPUs or CPU threads, `devices.py`),
and the head of the queue waits until its devices are free. With the `kubernetes` launcher each attempt is a
Kubernetes Job (`k8s_launcher.py`) that outlives the service: a restarted service re-attaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Gauge

from services.common.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from services.common.store import StoreRoots
from services.common.store.base import dumps_json, write_file_atomically
from services.trainer.launch import WORKER_MODULE, Launcher, WorkerHandle, build_launcher, kill_group
from services.trainer.schema import Artifact, Job, JobSpec, JobState, Progress, WorkerTask, utcnow
from services.trainer.settings import TrainerSettings
from services.trainer.validation import validate_spec

log = logging.getLogger("polyglot.trainer")
MAX_PAGE_SIZE = 1000
POLL_FAILURES_TOLERATED = 20  # consecutive failed polls (a Kubernetes API hiccup) before a job is failed
PERSIST_EVERY_S = 1.0  # progress is persisted at most this often; state changes always
JOBS = Gauge("polyglot_trainer_jobs", "Trainer jobs known to this service, by state", ["state"])
TOKENS_PER_SECOND = Gauge("polyglot_trainer_tokens_per_second", "Training throughput of the running jobs, summed")


class JobStore:
    """One directory per job: `job.json` (the record) and `work/` (the worker's files)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def work_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "work"

    def save(self, job: Job) -> None:
        write_file_atomically(self.job_dir(job.id) / "job.json", [dumps_json(job.model_dump(mode="json"))])

    def load_all(self) -> list[Job]:
        jobs = []
        if not self.root.is_dir():
            return jobs
        for path in sorted(self.root.glob("*/job.json")):
            try:
                jobs.append(Job.model_validate_json(path.read_bytes()))
            except ValueError as exc:  # a record from an incompatible version: keep serving the others
                log.error(json.dumps({"event": "unreadable_job", "path": str(path), "error": str(exc)[:300]}))
        return jobs


class ProgressReader:
    """Reads the complete lines appended to a worker's `progress.jsonl` since the last call."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in data[: end + 1].splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events


@dataclass
class _Run:
    """A live attempt: its worker, its supervisor task, and why it is being stopped (if it is)."""

    handle: WorkerHandle
    started: float
    reader: ProgressReader
    log_path: Path
    supervisor: asyncio.Task | None = None
    cancel: bool = False
    shutdown: bool = False
    last_persist: float = field(default=0.0)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return str(-returncode)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _is_our_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return WORKER_MODULE.encode() in cmdline


class JobManager:
    """The trainer's core: submit, watch, cancel and list jobs; run their workers; survive restarts.

    All methods run on one asyncio loop (the gRPC server's); blocking work goes to threads.
    """

    def __init__(
        self,
        settings: TrainerSettings,
        *,
        cuda_devices: Callable[[], int] | None = None,
        launcher: Launcher | None = None,
        roots: StoreRoots | None = None,
    ):
        self.settings = settings
        self.roots = roots  # where callers' URIs may point (None: anywhere)
        self.launcher = launcher or build_launcher(settings, cuda_devices=cuda_devices)
        self.store = JobStore(settings.jobs_dir)
        self.jobs: dict[str, Job] = {}
        self._by_key: dict[str, str] = {}
        self._runs: dict[str, _Run] = {}
        self._watchers: dict[str, set[asyncio.Queue]] = {}
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._scheduler: asyncio.Task | None = None
        self._prepared = False
        self._starting: set[str] = set()  # being launched right now
        self._cancel_on_start: set[str] = set()  # cancelled while being launched
        self._reattach: list[str] = []  # running in a detached launcher when the service started

    async def _prepare(self) -> None:
        if not self._prepared:
            await self.launcher.prepare()
            self._prepared = True

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.recover()
        await self._prepare()
        for job_id in self._reattach:
            job = self.jobs[job_id]
            work = self.store.work_dir(job_id)
            handle = await self.launcher.attach(job, work)
            self._watch_run(job, handle, work / f"worker-{job.attempts}.log")
            log.info(json.dumps({"event": "reattached", "job": job_id, "worker": handle.name}))
        self._reattach.clear()
        self._scheduler = asyncio.create_task(self._schedule(), name="trainer-scheduler")
        self._wakeup.set()

    def recover(self) -> list[Job]:
        """Load every job; apply the restart policy to those that were running. Returns the jobs touched."""
        touched = []
        for job in self.store.load_all():
            self.jobs[job.id] = job
            self._by_key[job.idempotency_key] = job.id
            if job.state != JobState.RUNNING:
                continue
            if self.launcher.detached:  # still running in the cluster: `start` re-attaches to it
                self._reattach.append(job.id)
                continue
            if job.worker_pid and _is_our_worker(job.worker_pid):
                kill_group(job.worker_pid, signal.SIGKILL)  # never two workers on one job
            step = job.progress.step
            job.worker_pid = None
            if self.settings.resume_on_restart:
                job.state = JobState.QUEUED
                job.error = (
                    f"the service restarted while this job ran (step {step}); it resumes from its last checkpoint"
                )
            else:
                job.state, job.finished_at = JobState.FAILED, utcnow()
                job.error = (
                    f"the service restarted while this job ran (step {step}); resubmit it with the same "
                    "idempotency key to resume from its last checkpoint"
                )
            self.store.save(job)
            touched.append(job)
        if touched:
            log.info(json.dumps({"event": "recovered", "jobs": [j.id for j in touched]}))
        return touched

    async def aclose(self) -> None:
        """Stop the scheduler and the workers; running jobs are left to resume (see the module docstring)."""
        if self._scheduler:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        runs = list(self._runs.items())
        if self.launcher.detached:  # the workers go on without us; the next start re-attaches
            for job_id, run in runs:
                if run.supervisor:
                    run.supervisor.cancel()
                self.store.save(self.jobs[job_id])
            return
        for _, run in runs:
            run.shutdown = True
            await run.handle.terminate(self.settings.cancel_grace_seconds)
        supervisors = [run.supervisor for _, run in runs if run.supervisor]
        if supervisors:
            _, pending = await asyncio.wait(supervisors, timeout=self.settings.cancel_grace_seconds)
            for _, run in runs:
                if run.supervisor in pending:
                    await run.handle.kill()
            if pending:
                await asyncio.wait(pending, timeout=10)

    # -- the API --------------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec, idempotency_key: str = "") -> Job:
        key = idempotency_key.strip()
        if key and key in self._by_key:
            return await self._resubmit(self.jobs[self._by_key[key]], spec)
        if spec.num_devices > 1:
            await self._prepare()  # the local launcher counts its GPUs (importing torch)
        cuda = self.launcher.gpu_limit() if spec.num_devices > 1 else None
        manifest = await asyncio.to_thread(validate_spec, spec, cuda_devices=cuda, roots=self.roots)
        async with self._lock:
            if key and key in self._by_key:  # a racing submit with the same key won
                return await self._resubmit(self.jobs[self._by_key[key]], spec)
            for other in self.jobs.values():
                if not other.state.terminal and other.spec.output_uri.rstrip("/") == spec.output_uri.rstrip("/"):
                    raise InvalidArgument(f"{spec.output_uri} is in use by job {other.id}", field="spec.output_uri")
            job_id = f"job-{uuid.uuid4().hex[:16]}"
            job = Job(
                id=job_id,
                idempotency_key=key or job_id,
                spec=spec,
                dataset=dataclasses.asdict(manifest),
                progress=Progress(total_steps=spec.recipe.max_steps),
            )
            try:
                self._commit(job)
            except Exception as exc:  # nothing half-made stays behind: no phantom job, the key stays free
                self.jobs.pop(job.id, None)
                shutil.rmtree(self.store.job_dir(job.id), ignore_errors=True)
                self._update_metrics()
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ResourceExhausted(f"no space left to save the job: {exc.strerror}") from exc
                raise
            self._by_key[job.idempotency_key] = job.id
        log.info(json.dumps({"event": "submitted", "job": job.id, "rows": manifest.rows}))
        self._wakeup.set()
        return job.model_copy(deep=True)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", field="job_id")
        return job.model_copy(deep=True)

    async def cancel(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", field="job_id")
        if job.state == JobState.QUEUED:
            job.state, job.finished_at, job.error = JobState.CANCELLED, utcnow(), "cancelled before it started"
            self._commit(job)
        elif job.state == JobState.RUNNING and job_id in self._starting:
            self._cancel_on_start.add(job_id)  # `_launch` stops it as soon as it has started
        elif job.state == JobState.RUNNING and (run := self._runs.get(job_id)):
            run.cancel = True
            await run.handle.terminate(self.settings.cancel_grace_seconds)
            if run.supervisor:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(run.supervisor), self.settings.cancel_grace_seconds + 10)
        return self.get(job_id)

    def list(
        self,
        states: Iterable[JobState] = (),
        labels: Mapping[str, str] | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Job], str]:
        """Jobs oldest first, filtered by state (any of) and labels (all of); `page_token` is opaque."""
        wanted = set(states)
        jobs = sorted(self.jobs.values(), key=lambda j: (j.created_at, j.id))
        jobs = [
            j
            for j in jobs
            if (not wanted or j.state in wanted) and all(j.spec.labels.get(k) == v for k, v in (labels or {}).items())
        ]
        try:
            offset = int(page_token) if page_token else 0
            if offset < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("not a token from a previous ListJobs reply", field="page_token") from None
        if page_size < 0:
            raise InvalidArgument("must be >= 0", field="page_size")
        size = min(page_size or 100, MAX_PAGE_SIZE)
        page = [j.model_copy(deep=True) for j in jobs[offset : offset + size]]
        return page, (str(offset + size) if offset + size < len(jobs) else "")

    async def watch(self, job_id: str) -> AsyncIterator[Job | Progress]:
        """The job now, then each Progress and each state change, ending with the finished job."""
        job = self.get(job_id)
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(queue)
        try:
            yield job
            if job.state.terminal:
                return
            while True:
                item = await queue.get()
                yield item
                if isinstance(item, Job) and item.state.terminal:
                    return
        finally:
            self._watchers.get(job_id, set()).discard(queue)

    # -- internals ------------------------------------------------------------------------------------

    def _commit(self, job: Job) -> None:
        """Persist, then tell the watchers: what a watcher saw is always what a restart reloads."""
        self.jobs[job.id] = job
        self.store.save(job)
        self._publish(job.id, job.model_copy(deep=True))
        self._update_metrics()

    def _update_metrics(self) -> None:
        for state in JobState:
            JOBS.labels(state.value).set(sum(1 for j in self.jobs.values() if j.state == state))
        running = (j for j in self.jobs.values() if j.state == JobState.RUNNING)
        TOKENS_PER_SECOND.set(sum(j.progress.tokens_per_second for j in running))

    def _publish(self, job_id: str, item: Job | Progress) -> None:
        for queue in self._watchers.get(job_id, ()):
            queue.put_nowait(item)

    async def _resubmit(self, job: Job, spec: JobSpec) -> Job:
        if job.spec.fingerprint() != spec.fingerprint():
            raise AlreadyExists(
                f"idempotency key {job.idempotency_key!r} already names job {job.id} with a different spec",
                field="idempotency_key",
            )
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            previous = job.error
            job.state, job.finished_at = JobState.QUEUED, None
            job.error = f"resubmitted; resumes from its last checkpoint (was: {previous})"[:2000]
            self._commit(job)
            log.info(json.dumps({"event": "resubmitted", "job": job.id}))
            self._wakeup.set()
        return job.model_copy(deep=True)

    async def _schedule(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            queued = sorted((j for j in self.jobs.values() if j.state == JobState.QUEUED), key=lambda j: j.created_at)
            for job in queued:
                if job.state != JobState.QUEUED:  # cancelled while an earlier job was being launched
                    continue
                if len(self._runs) >= self.settings.max_concurrent_jobs:
                    break
                reservation = self.launcher.reserve(job)
                if reservation is None:
                    break  # first in, first out: the head waits for its devices, nobody overtakes it
                try:
                    await self._launch(job, reservation)
                except Exception as exc:  # the loop outlives any one job: that job fails, with the reason
                    self._launch_failed(job, exc)

    def _launch_failed(self, job: Job, exc: Exception) -> None:
        log.exception("launching %s failed", job.id)
        self._starting.discard(job.id)
        self.launcher.release(job.id)
        job.state, job.finished_at = JobState.FAILED, utcnow()
        job.error = f"could not launch the worker: {exc}"[:2000]
        try:
            self._commit(job)
        except Exception:  # the state disk is full too: the job is FAILED in memory, and watchers are told why
            log.exception("saving %s failed", job.id)
            self._publish(job.id, job.model_copy(deep=True))

    async def _launch(self, job: Job, reservation: object) -> None:
        work = self.store.work_dir(job.id)
        work.mkdir(parents=True, exist_ok=True)
        for name in ("progress.jsonl", "result.json", "error.json"):
            (work / name).unlink(missing_ok=True)
        attempt = job.attempts + 1
        task = WorkerTask(
            job_id=job.id,
            attempt=attempt,
            spec=job.spec,
            fingerprint=job.spec.fingerprint(),
            work_dir=str(work),
            parent_pid=os.getpid(),
            keep_checkpoints=self.settings.keep_checkpoints,
            torch_threads=self.settings.torch_threads,
            cache_dir=str(self.settings.cache_dir.resolve()),
            dataset=job.dataset,
            prior_wall_seconds=job.wall_seconds,
            created_at=job.created_at,
        )
        task = self.launcher.adapt(task, reservation)
        write_file_atomically(work / "task.json", [dumps_json(task.model_dump(mode="json"))])
        log_path = work / f"worker-{attempt}.log"
        # RUNNING from here on, so nobody launches it twice; a cancel meanwhile stops it once it has started.
        job.state, job.attempts, job.error = JobState.RUNNING, attempt, ""
        self._starting.add(job.id)
        try:
            handle = await self.launcher.start(job, task, work, log_path, reservation)
        except Exception as exc:  # OSError locally; an API error from Kubernetes
            log.exception("starting %s failed", job.id)
            self.launcher.release(job.id)
            job.state, job.finished_at = JobState.FAILED, utcnow()
            job.error = f"could not start the worker: {exc}"[:2000]
            self._commit(job)
            return
        finally:
            self._starting.discard(job.id)
        job.worker_pid = handle.pid
        job.started_at = job.started_at or utcnow()
        self._commit(job)
        run = self._watch_run(job, handle, log_path)
        log.info(json.dumps({"event": "worker_started", "job": job.id, "attempt": attempt, "worker": handle.name}))
        if job.id in self._cancel_on_start:
            self._cancel_on_start.discard(job.id)
            run.cancel = True
            await handle.terminate(self.settings.cancel_grace_seconds)

    def _watch_run(self, job: Job, handle: WorkerHandle, log_path: Path) -> _Run:
        work = self.store.work_dir(job.id)
        run = _Run(
            handle=handle, started=time.monotonic(), reader=ProgressReader(work / "progress.jsonl"), log_path=log_path
        )
        self._runs[job.id] = run
        run.supervisor = asyncio.create_task(self._supervise(job.id, run), name=f"trainer-{job.id}")
        return run

    async def _supervise(self, job_id: str, run: _Run) -> None:
        failures = 0
        try:
            while True:
                try:
                    rc = await run.handle.poll()
                    failures = 0
                except Exception:
                    failures += 1
                    if failures > POLL_FAILURES_TOLERATED:
                        raise
                    log.warning("polling %s failed (%d in a row)", job_id, failures, exc_info=True)
                    rc = None
                self._apply_events(job_id, run)
                if rc is not None:
                    break
                await asyncio.sleep(max(self.settings.poll_interval_seconds, self.launcher.min_poll_seconds))
            self._finish(job_id, run, rc)
        except Exception:
            log.exception("supervising %s failed", job_id)
            with contextlib.suppress(Exception):
                await run.handle.kill()
            job = self.jobs[job_id]
            job.state, job.finished_at, job.error = (
                JobState.FAILED,
                utcnow(),
                "internal error while supervising the worker",
            )
            self._commit(job)
        finally:
            self._runs.pop(job_id, None)
            self.launcher.release(job_id)
            self._wakeup.set()

    def _apply_events(self, job_id: str, run: _Run) -> None:
        job = self.jobs[job_id]
        changed = False
        for event in run.reader.read():
            kind = event.get("event")
            if kind in ("start", "log"):
                p = job.progress
                p.step = int(event.get("step", p.step))
                p.total_steps = int(event.get("total_steps", p.total_steps))
                if kind == "log":
                    p.loss = float(event.get("loss", p.loss))
                    p.learning_rate = float(event.get("learning_rate", p.learning_rate))
                    p.tokens_per_second = float(event.get("tokens_per_second", 0.0))
                    p.eta_seconds = float(event.get("eta_seconds", 0.0))
                    p.epoch = float(event.get("epoch", p.epoch))
                self._publish(job_id, p.model_copy())
                changed = True
            elif kind == "checkpoint":
                job.outputs["checkpoint"] = Artifact(uri=event["uri"], sha256=event.get("sha256", ""))
                changed = True
        now = time.monotonic()
        if changed:
            self._update_metrics()
        if changed and now - run.last_persist >= PERSIST_EVERY_S:
            self.store.save(job)
            run.last_persist = now

    def _finish(self, job_id: str, run: _Run, rc: int) -> None:
        job = self.jobs[job_id]
        work = self.store.work_dir(job_id)
        job.wall_seconds += time.monotonic() - run.started
        job.worker_pid = None
        result_path, error_path = work / "result.json", work / "error.json"
        if run.shutdown:
            note = f"the service stopped while this job ran (step {job.progress.step})"
            if self.settings.resume_on_restart:
                job.state, job.error = JobState.QUEUED, f"{note}; it resumes from its last checkpoint on restart"
            else:
                job.state, job.finished_at = JobState.FAILED, utcnow()
                job.error = f"{note}; resubmit it with the same idempotency key to resume from its last checkpoint"
        elif run.cancel:
            job.state, job.finished_at, job.error = JobState.CANCELLED, utcnow(), "cancelled while running"
        elif rc == 0 and result_path.exists():
            result = json.loads(result_path.read_text(encoding="utf-8"))
            for name, ref in result.get("outputs", {}).items():
                job.outputs[name] = Artifact(**ref)
            job.progress.step = int(result.get("step", job.progress.step))
            job.progress.eta_seconds = 0.0
            job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
        else:
            if error_path.exists():
                reason = json.loads(error_path.read_text(encoding="utf-8")).get("error", "unknown error")
            elif rc is not None and rc < 0:
                reason = f"the worker was killed by {_signal_name(rc)}"
            else:
                reason = f"the worker exited with code {rc}: {_tail(run.log_path)}"
            job.state, job.finished_at = JobState.FAILED, utcnow()
            job.error = f"attempt {job.attempts} failed at step {job.progress.step}: {reason}"[:4000]
        self._commit(job)
        log.info(json.dumps({"event": "worker_finished", "job": job_id, "state": job.state.value, "rc": rc}))

"""A loopback stand-in for the few Kubernetes API calls the trainer's `kubernetes` launcher makes.

It speaks the API's wire format: request bodies are read into `kubernetes.client` models (`V1Job`) and every
reply is a model (`V1Job`, `V1JobList`, `V1Status`, `V1Pod`) serialised by
`ApiClient().sanitize_for_serialization`, so the real `kubernetes` client, pointed at its URL, drives it as
it would a cluster:

    POST   /apis/batch/v1/namespaces/{ns}/jobs                 create (409 if the name is taken)
    GET    /apis/batch/v1/namespaces/{ns}/jobs/{name}/status   read status (404 once deleted)
    GET    /apis/batch/v1/namespaces/{ns}/jobs?labelSelector=  list by label (k=v[,k=v])
    DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}          delete (the options are recorded)
    GET    /api/v1/namespaces/{ns}/pods/{name}                 the trainer's own pod (its image)

A Job's life is driven by the test (`run`, `succeed`, `fail`) or by a `kubelet` callback that is told of
each created and deleted Job (tests/integration/test_trainer_concurrent.py runs the real worker with it).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client

JOBS = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+)(?P<status>/status)?)?$")
POD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)$")


def _now() -> datetime:
    return datetime.now(UTC)


class FakeKubernetes:
    """`with FakeKubernetes() as api:` serves on 127.0.0.1; `api.url` is the host to configure."""

    def __init__(self, own_image: str = "polyglot-trainer:0.1.0-cpu", kubelet: Any = None):
        self.own_image = own_image
        self.kubelet = kubelet  # object with created(V1Job) and deleted(V1Job), or None
        self.jobs: dict[tuple[str, str], client.V1Job] = {}
        self.requests: list[tuple[str, str]] = []
        self.deletions: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._api = client.ApiClient()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubernetes:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what a test does ------------------------------------------------------------------------------

    def job(self, name: str, namespace: str = "polyglot") -> client.V1Job | None:
        with self.lock:
            return self.jobs.get((namespace, name))

    def _update(self, name: str, namespace: str, change: Callable[[client.V1JobStatus], None]) -> None:
        with self.lock:
            job = self.jobs[(namespace, name)]
            change(job.status)

    def run(self, name: str, namespace: str = "polyglot") -> None:
        def change(status: client.V1JobStatus) -> None:
            status.active, status.ready, status.start_time = 1, 1, _now()

        self._update(name, namespace, change)

    def succeed(self, name: str, namespace: str = "polyglot") -> None:
        def change(status: client.V1JobStatus) -> None:
            status.active, status.ready, status.succeeded, status.completion_time = 0, 0, 1, _now()
            status.conditions = [
                client.V1JobCondition(type="SuccessCriteriaMet", status="True", reason="CompletionsReached"),
                client.V1JobCondition(type="Complete", status="True", reason="CompletionsReached"),
            ]

        self._update(name, namespace, change)

    def fail(self, name: str, namespace: str = "polyglot", message: str = "Job has reached the backoff limit") -> None:
        def change(status: client.V1JobStatus) -> None:
            status.active, status.ready, status.failed = 0, 0, 1
            status.conditions = [
                client.V1JobCondition(type="FailureTarget", status="True", reason="BackoffLimitExceeded"),
                client.V1JobCondition(type="Failed", status="True", reason="BackoffLimitExceeded", message=message),
            ]

        self._update(name, namespace, change)

    # -- the HTTP side ---------------------------------------------------------------------------------

    def _model(self, data: Any, kind: str) -> Any:
        return self._api.deserialize(SimpleNamespace(data=json.dumps(data)), kind)

    def _status(self, code: int, reason: str, message: str) -> tuple[int, Any]:
        status = "Success" if code < 400 else "Failure"
        return code, client.V1Status(kind="Status", api_version="v1", status=status, code=code, reason=reason,
                                     message=message)  # fmt: skip

    def handle(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        parsed = urlparse(url)
        self.requests.append((method, parsed.path))
        if (m := POD.match(parsed.path)) and method == "GET":
            container = client.V1Container(name="trainer", image=self.own_image)
            pod = client.V1Pod(api_version="v1", kind="Pod", spec=client.V1PodSpec(containers=[container]),
                               metadata=client.V1ObjectMeta(name=m["name"], namespace=m["ns"]))  # fmt: skip
            return 200, pod
        m = JOBS.match(parsed.path)
        if not m:
            return self._status(404, "NotFound", f"no route {parsed.path}")
        ns, name = m["ns"], m["name"]
        with self.lock:
            if method == "POST" and not name:
                job: client.V1Job = self._model(body, "V1Job")
                key = (ns, job.metadata.name)
                if key in self.jobs:
                    return self._status(409, "AlreadyExists", f'jobs.batch "{job.metadata.name}" already exists')
                job.metadata.namespace, job.metadata.uid = ns, f"uid-{len(self.requests)}"
                job.metadata.creation_timestamp = _now()
                job.status = client.V1JobStatus(active=0)
                self.jobs[key] = job
                created = job
            elif method == "GET" and not name:
                selector = parse_qs(parsed.query).get("labelSelector", [""])[0]
                wanted = dict(p.split("=", 1) for p in selector.split(",") if p)
                items = [
                    j
                    for (n, _), j in self.jobs.items()
                    if n == ns and all((j.metadata.labels or {}).get(k) == v for k, v in wanted.items())
                ]
                return 200, client.V1JobList(api_version="batch/v1", kind="JobList", items=items,
                                             metadata=client.V1ListMeta())  # fmt: skip
            elif (ns, name) not in self.jobs:
                return self._status(404, "NotFound", f'jobs.batch "{name}" not found')
            elif method == "GET":
                return 200, self.jobs[(ns, name)]
            elif method == "DELETE":
                job = self.jobs.pop((ns, name))
                # The client sends the options as query parameters (and maybe a V1DeleteOptions body).
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                self.deletions.append({"name": name, **query, **(body or {})})
                created = None
            else:
                return self._status(405, "MethodNotAllowed", method)
        if self.kubelet is not None:  # outside the lock: it may call back (run, succeed, fail)
            (self.kubelet.created if created else self.kubelet.deleted)(created or job)
        return (201, created) if created else self._status(200, "Deleted", f'jobs.batch "{name}" deleted')

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                code, model = fake.handle(self.command, self.path, body)
                data = json.dumps(fake._api.sanitize_for_serialization(model)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args) -> None:
                pass

        return Handler

"""Who is calling, and may they: the server side of authentication (docs/security.md).

A caller proves an identity with a bearer token (`authorization: Bearer <token>` metadata, matched in
constant time against every configured token) or, on a mutual-TLS server, with its client certificate (the
identity is the certificate's common name). Rules then say which identities may call which methods:

    POLYGLOT_CALLERS=/etc/polyglot/callers   # one file per identity: its token, or `sha256:<hex digest>`
    POLYGLOT_AUTHORIZATION='{"/polyglot.v1.TrainerService/SubmitJob": ["study"], "*": ["*"]}'

The callers file or directory is re-read when it changes (checked at most every `RELOAD_SECONDS`), so a
rotated Kubernetes Secret takes effect without a restart; a change that does not load (a half-written
file, a token too short) keeps the tokens in force and logs why.

Health (grpc.health.v1) and reflection stay open, for probes. A service that listens beyond loopback
without either refuses to start unless told `--insecure` (`check_exposure`).

The OpenAI-compatible front door (HTTP) uses the same tokens and rules: `Authenticator.from_settings(s)`
then `identity = auth.http_identity(request.headers.get("authorization"), "/openai/v1/chat/completions")`,
which raises `Unauthenticated` (HTTP 401) or `PermissionDenied` (HTTP 403).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.credentials import is_loopback
from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated
from services.common.settings import ANY, DEFAULT_AUTHORIZATION, ServerSettings

DIGEST = b"sha256:"
__all__ = ["ANY", "DEFAULT_AUTHORIZATION", "Authenticator", "check_exposure", "load_tokens"]

# Methods open to anyone: the standard health service (kubelet probes carry no credentials) and reflection.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
RELOAD_SECONDS = 5.0  # how stale a rotated token may be; a check is a few stat calls
log = logging.getLogger("polyglot.auth")


def load_tokens(path: Path) -> dict[str, bytes]:
    """Identity → token from `path`: a directory with one file per identity holding its token (a mounted
    Kubernetes Secret; its `..data` bookkeeping entries are skipped), or a file of `identity: token` lines.

    A token may be given as `sha256:<hex digest of the token>`, so that a server's Secret does not hold
    the tokens themselves: a service that can read it cannot call another as someone else.
    """
    tokens: dict[str, bytes] = {}
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            if not entry.name.startswith(".") and entry.is_file():
                tokens[entry.name] = entry.read_bytes().strip()
    else:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            identity, sep, token = line.partition(":")
            if not sep or not identity.strip() or not token.strip():
                raise InvalidArgument(f"{path}:{number}: expected 'identity: token'", field="callers")
            tokens[identity.strip()] = token.strip().encode()
    empty = sorted(name for name, token in tokens.items() if len(token) < 16 and not token.startswith(DIGEST))
    if empty:
        raise InvalidArgument(f"tokens shorter than 16 characters in {path}: {', '.join(empty)}", field="callers")
    if not tokens:
        raise InvalidArgument(f"no tokens in {path}", field="callers")
    return tokens


class CallersFile:
    """`load_tokens(path)`, loaded again when the file or directory changes (kubelet swaps a Secret's `..data`
    link; an editor replaces a file): its entries' names, inodes, sizes and modification times are compared at
    most every `interval` seconds."""

    def __init__(self, path: Path, interval: float | None = None):
        self.path, self.interval = Path(path), RELOAD_SECONDS if interval is None else interval
        self._stamp = self._fingerprint()
        self._tokens = load_tokens(self.path)
        self._checked = time.monotonic()

    def _fingerprint(self) -> tuple | None:
        try:
            entries = sorted(self.path.iterdir()) if self.path.is_dir() else [self.path]
            stats = [(e.name, os.stat(e)) for e in entries if not e.name.startswith(".") or e == self.path]
            return tuple((name, st.st_ino, st.st_size, st.st_mtime_ns) for name, st in stats)
        except OSError:
            return None  # gone for a moment (a swap in progress): compared again at the next check

    def tokens(self) -> dict[str, bytes]:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self._tokens
        self._checked = now
        stamp = self._fingerprint()
        if stamp is None or stamp == self._stamp:
            return self._tokens
        try:
            tokens = load_tokens(self.path)
        except (InvalidArgument, OSError) as exc:
            log.error(json.dumps({"event": "callers_not_reloaded", "path": str(self.path), "error": str(exc)}))
        else:
            added, removed = sorted(tokens.keys() - self._tokens.keys()), sorted(self._tokens.keys() - tokens.keys())
            log.info(json.dumps({"event": "callers_reloaded", "identities": len(tokens), "added": added,
                                 "removed": removed}))  # fmt: skip
            self._tokens = tokens
        self._stamp = stamp
        return self._tokens


def check_exposure(settings: ServerSettings) -> None:
    """Refuse to serve beyond loopback with no way to tell callers apart, unless `insecure` says so."""
    if settings.insecure or is_loopback(settings.host):
        return
    if settings.callers or settings.tls_client_ca:
        return
    raise InvalidArgument(
        f"listening on {settings.host} lets other machines call every method, and no authentication is set: "
        "set callers and/or tls_client_ca (docs/security.md), or pass --insecure (POLYGLOT_INSECURE=true) "
        "when something else guards the network",
        field="insecure",
    )


@dataclass(frozen=True)
class Authenticator:
    """Tokens and rules of one server; `identify` then `authorize` on each call."""

    tokens: dict[str, bytes] = field(default_factory=dict)  # identity -> token (when no `callers` file)
    rules: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_AUTHORIZATION))
    client_certificates: bool = False  # mutual TLS: a verified certificate's common name is an identity
    callers: CallersFile | None = None  # the tokens, kept current with their file (they replace `tokens`)

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Authenticator | None:
        """None when the server checks nobody (no tokens, no client CA)."""
        if not (settings.callers or settings.tls_client_ca):
            return None
        callers = CallersFile(settings.callers) if settings.callers else None
        return cls({}, dict(settings.authorization), settings.tls_client_ca is not None, callers)

    def current_tokens(self) -> dict[str, bytes]:
        return self.callers.tokens() if self.callers is not None else self.tokens

    def token_identity(self, authorization: str | None) -> str | None:
        """The identity whose token `authorization` (`Bearer <token>`) carries; None when there is none.

        Every configured token is compared, in constant time, so the time taken says nothing about which
        one (or how much of one) matched. Raises Unauthenticated for a token that matches none.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        given = token.strip().encode()
        digest = DIGEST + hashlib.sha256(given).hexdigest().encode()
        found = None
        for identity, expected in self.current_tokens().items():
            hashed = expected.startswith(DIGEST)
            if hmac.compare_digest(digest if hashed else given, expected.lower() if hashed else expected):
                found = identity
        if found is None:
            raise Unauthenticated("unknown token")
        return found

    def identify(self, authorization: str | None, certificate_name: str | None) -> str:
        """The caller's identity from its token, else from its verified client certificate."""
        identity = self.token_identity(authorization)
        if identity is None and self.client_certificates and certificate_name:
            identity = certificate_name
        if identity is None:
            wanted = "a bearer token" + (" or a client certificate" if self.client_certificates else "")
            raise Unauthenticated(f"this service needs {wanted} (docs/security.md)")
        return identity

    def allowed(self, method: str) -> list[str]:
        """The identities `method` (`/package.Service/Method`) is open to; `*` = any authenticated one."""
        for pattern, identities in self.rules.items():
            if fnmatch.fnmatchcase(method, pattern):
                return identities
        return []

    def authorize(self, identity: str, method: str) -> None:
        allowed = self.allowed(method)
        if ANY not in allowed and identity not in allowed:
            raise PermissionDenied(f"{identity!r} may not call {method.rsplit('/', 1)[-1]}")

    def http_identity(self, authorization: str | None, method: str) -> str:
        """For HTTP front doors: the caller of `method` (a path, matched against the same rules)."""
        identity = self.identify(authorization, None)
        self.authorize(identity, method)
        return identity


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)

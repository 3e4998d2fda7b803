"""Process settings shared by every service, read from the environment (pydantic-settings).

Each service reads `POLYGLOT_<SERVICE>_<FIELD>` first, then `POLYGLOT_<FIELD>`; CLI options override both.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.catalog import SERVICES

ANY = "*"
# Only the study starts or cancels training (and so writes adapters to the store); any authenticated
# caller may use every other method. First matching pattern wins; `*` in a pattern matches any text.
# Enforced by services/common/auth.py.
DEFAULT_AUTHORIZATION: dict[str, list[str]] = {
    "/polyglot.v1.TrainerService/SubmitJob": ["study"],
    "/polyglot.v1.TrainerService/CancelJob": ["study"],
    ANY: [ANY],
}


class ServerSettings(BaseSettings):
    """How a service process listens, logs, and shuts down."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 inside containers.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks the service's default.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics HTTP port; unset = service default, 0 = off."
    )
    max_message_mb: int = Field(64, gt=0, description="Largest gRPC message accepted or sent, in MiB.")
    grace_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM, in-flight calls get this long to finish before being cancelled."
    )
    max_connection_age_seconds: float | None = Field(
        None,
        gt=0,
        description="Close each client connection after about this long (±10%); clients reconnect and re-resolve "
        "their target, so replicas added since spread the load. Unset = never.",
    )
    max_connection_age_grace_seconds: float | None = Field(
        None,
        ge=0,
        description="Calls in flight on a connection closed for its age get this long to finish; unset = as long "
        "as they take.",
    )
    max_concurrent_rpcs: int | None = Field(None, gt=0, description="Reject calls beyond this many at once.")
    tls_cert: Path | None = Field(None, description="PEM server certificate; enables TLS with tls_key.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present certs (their common name is an identity)."
    )
    tls_dir: Path | None = Field(
        None,
        description="Directory of a mounted kubernetes.io/tls Secret: its tls.crt and tls.key are tls_cert and tls_key "
        "where those are unset.",
    )
    callers: Path | None = Field(
        None,
        description="Who may call, by bearer token: a directory with one file per identity holding its token or "
        "'sha256:<hex digest>' (a mounted Kubernetes Secret), or a file of 'identity: token' lines. docs/security.md.",
    )
    authorization: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_AUTHORIZATION),
        description="Method pattern -> identities allowed to call it ('*' = any authenticated caller); the first "
        "matching pattern wins. Applies when callers or tls_client_ca is set.",
    )
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="A second, plaintext port serving only grpc.health.v1, for probes that cannot speak TLS "
        "(kubelet's gRPC probes); unset = none.",
    )
    insecure: bool = Field(
        False, description="Serve beyond loopback without authentication (only where something else guards it)."
    )
    max_connections: int = Field(
        4096, gt=0, description="Open connections at most; more are refused (fewer if the open-file limit is lower)."
    )
    max_connection_idle_seconds: float | None = Field(
        300.0, gt=0, description="Close a connection that has had no call for this long; unset = never."
    )
    handshake_timeout_seconds: float = Field(
        10.0, gt=0, description="Close a new connection that has not finished its TLS/HTTP/2 handshake by then."
    )
    max_streams_per_connection: int = Field(
        256, gt=0, description="Calls in flight on one connection at most (HTTP/2 max concurrent streams)."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    store_uri: str = Field(
        ".polyglot/artifacts", description="Artifact store: s3://bucket/prefix, file:///path or a local directory."
    )
    file_roots: list[Path] | None = Field(
        None,
        description="Directories under which callers' file:// URIs may be read or written (docs/security.md); "
        "unset = the service's own data directory and its local store_uri.",
    )
    s3_buckets: list[str] | None = Field(
        None, description="Buckets callers' s3:// URIs may name; unset = any the S3 credentials reach."
    )
    max_input_files: int = Field(10_000, gt=0, description="Files in a directory input (model, adapter) at most.")
    max_input_bytes: int = Field(1024**4, gt=0, description="Bytes in a directory input (model, adapter) at most.")

    @model_validator(mode="after")
    def _files_of_tls_dir(self) -> ServerSettings:
        if self.tls_dir is not None:
            self.tls_cert = self.tls_cert or self.tls_dir / "tls.crt"
            self.tls_key = self.tls_key or self.tls_dir / "tls.key"
        return self


def server_settings(service: str, **overrides) -> ServerSettings:
    """Settings for `service`, with its own env prefix taking precedence over the shared one."""

    class _Specific(ServerSettings):
        model_config = SettingsConfigDict(env_prefix=f"POLYGLOT_{service.upper()}_", extra="ignore")

    shared = ServerSettings().model_dump(exclude_unset=True)
    specific = _Specific().model_dump(exclude_unset=True)
    values = {**shared, **specific, **{k: v for k, v in overrides.items() if v is not None}}
    settings = ServerSettings.model_validate(values)
    spec = SERVICES[service]
    if not settings.port:
        settings.port = spec.port
    if settings.metrics_port is None:
        settings.metrics_port = spec.metrics_port
    return settings

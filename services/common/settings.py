"""Process settings shared by every service, read from the environment (pydantic-settings).

Each service reads `POLYGLOT_<SERVICE>_<FIELD>` first, then `POLYGLOT_<FIELD>`; CLI options override both.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.catalog import SERVICES


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
    tls_client_ca: Path | None = Field(None, description="PEM CA bundle; when set, clients must present certs.")
    log_level: str = Field("INFO", description="Python logging level.")
    store_uri: str = Field(
        ".polyglot/artifacts", description="Artifact store: s3://bucket/prefix, file:///path or a local directory."
    )


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

"""What a client presents to the services: TLS (mutual, with a client certificate) and a bearer token.

Read once per process from the environment, and used by every channel Polyglot opens
(`services.common.client.make_channel`, `wait_for_health`): the typed clients, so the flows, the judge's
calls to lid and the generator, `polyglot health` and the lm-eval adapter.

    POLYGLOT_TLS_CA=ca.pem POLYGLOT_TLS_CLIENT_CERT=study.pem POLYGLOT_TLS_CLIENT_KEY=study.key \
    POLYGLOT_TOKEN_FILE=/var/run/secrets/polyglot/token polyglot health lid:50051

A token travels only over TLS, or to a loopback address (gRPC's local credentials): a plaintext
connection to another machine would show it to the network, so that is refused (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import FailedPrecondition


class ClientCredentials(BaseSettings):
    """The client side of authentication, from `POLYGLOT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_", extra="ignore")

    tls_ca: Path | None = Field(None, description="PEM CA bundle the servers' certificates are checked against.")
    tls_client_cert: Path | None = Field(None, description="PEM client certificate, for servers that ask for one.")
    tls_client_key: Path | None = Field(None, description="PEM private key of tls_client_cert.")
    tls_server_name: str | None = Field(
        None, description="Name the server certificates are checked for, when not the address's host."
    )
    token: SecretStr | None = Field(None, description="Bearer token sent with every call.")
    token_file: Path | None = Field(None, description="File holding the bearer token (a mounted Secret).")

    def bearer(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value().strip() or None
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return None


_service: str | None = None


def for_service(name: str) -> None:
    """Make a service process (`polyglot-serve judge`) read `POLYGLOT_<NAME>_<FIELD>` before
    `POLYGLOT_<FIELD>`, as its server settings do: on one machine the judge calls lid as `judge`, not as
    whatever identity the shared environment names."""
    global _service
    _service = name
    client_credentials.cache_clear()


@cache
def client_credentials() -> ClientCredentials:
    """This process's credentials, read from the environment on first use (tests: `.cache_clear()`)."""
    shared = ClientCredentials()
    if _service is None:
        return shared

    class _Specific(ClientCredentials):
        model_config = SettingsConfigDict(env_prefix=f"POLYGLOT_{_service.upper()}_", extra="ignore")

    specific = _Specific().model_dump(exclude_unset=True)
    if specific.get("token") is not None or specific.get("token_file") is not None:  # one token source, not both
        shared = shared.model_copy(update={"token": None, "token_file": None})
    return shared.model_copy(update=specific)


def target_hosts(target: str) -> list[str]:
    """The hosts a gRPC target names: `host:port`, `[::1]:port`, `ipv4:a:p,b:p`, `dns:///name:port`."""
    if target.startswith("unix:"):
        return ["localhost"]
    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("ipv4", "ipv6", "dns"):
        target = rest.rsplit("/", 1)[-1] if scheme == "dns" else rest
    hosts = []
    for part in target.split(","):
        host = part.rsplit(":", 1)[0] if part.count(":") == 1 or part.startswith("[") else part
        hosts.append(host.strip("[]"))
    return hosts


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_credentials(target: str, creds: ClientCredentials | None = None) -> grpc.ChannelCredentials | None:
    """The credentials of a channel to `target`, or None for a plaintext channel without a token.

    Raises FailedPrecondition when a token would go in plaintext to a host that is not loopback.
    """
    creds = creds or client_credentials()
    token = creds.bearer()
    if creds.tls_ca or creds.tls_client_cert:
        transport = grpc.ssl_channel_credentials(
            root_certificates=creds.tls_ca.read_bytes() if creds.tls_ca else None,
            private_key=creds.tls_client_key.read_bytes() if creds.tls_client_key else None,
            certificate_chain=creds.tls_client_cert.read_bytes() if creds.tls_client_cert else None,
        )
    elif token is None:
        return None
    elif all(is_loopback(h) for h in target_hosts(target)):
        # Plaintext on loopback; gRPC's local credentials check the peer is local and carry call credentials.
        transport = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        raise FailedPrecondition(
            f"a bearer token (POLYGLOT_TOKEN or POLYGLOT_TOKEN_FILE) is sent only over TLS or to loopback, "
            f"and {target} is neither: set POLYGLOT_TLS_CA",
            field="tls_ca",
        )
    if token is None:
        return transport
    return grpc.composite_channel_credentials(transport, grpc.access_token_call_credentials(token))


def channel_options(creds: ClientCredentials | None = None) -> list[tuple[str, str]]:
    """Extra channel options: the name server certificates are checked for, when set."""
    creds = creds or client_credentials()
    return [("grpc.ssl_target_name_override", creds.tls_server_name)] if creds.tls_server_name else []

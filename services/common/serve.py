"""`polyglot-serve <service>`: one service in the foreground, its options generated from its settings classes.

    polyglot-serve lid --port 50051 --max-batch 256     # or `python -m services.common.serve lid`

Each option is a field of `ServerSettings` (how the process listens) or of the service's own settings class
(named in `services.common.catalog`), the way TRL builds its CLI from its config dataclasses, so `--help`, the
environment and the code cannot drift apart. A value comes from the option, else `POLYGLOT_<SERVICE>_<FIELD>`,
else (server fields) `POLYGLOT_<FIELD>`, else the default. Secret fields get no option: `ps` would show it.
Every bad setting, from an option or the environment, exits 2 with one line naming the option and its env.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import re
import types
import typing
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from services.common.auth import Authenticator, check_exposure
from services.common.catalog import SERVICES, ServiceSpec
from services.common.credentials import for_service
from services.common.errors import PolyglotError
from services.common.server import run_service
from services.common.settings import ServerSettings, server_settings

console = Console(stderr=True, soft_wrap=True)
# `-h` as well as `--help`, on this app and (inherited by the click context) on its commands; the
# `polyglot` apps use the same settings.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="polyglot-serve",
    help="Run one service in the foreground (SIGTERM drains in-flight calls).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"polyglot {importlib.metadata.version('polyglot')}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option("--version", callback=_print_version, is_eager=True, help="Print the package version and exit."),
]


@app.callback()
def _app(version: VersionOption = False) -> None:
    """The app's own options (`--version`); its help text is `Typer(help=...)`'s."""


@dataclass(frozen=True)
class Setting:
    """One settings field as a CLI option."""

    name: str
    field: FieldInfo
    server: bool  # a ServerSettings field, else one of the service's own
    env: tuple[str, ...]  # the variables it is read from, first wins

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def json(self) -> bool:
        """Dicts and models take JSON, as they do from the environment."""
        return _option_type(self.field.annotation) is None

    def where(self) -> str:
        return f"{self.option} (env {' or '.join(self.env)})"


@cache
def settings_of(service: str) -> dict[str, Setting]:
    """The options of `polyglot-serve <service>`, by field name."""
    own = SERVICES[service].settings_class()
    found = {
        name: Setting(name, field, True, (f"POLYGLOT_{service.upper()}_{name.upper()}", f"POLYGLOT_{name.upper()}"))
        for name, field in ServerSettings.model_fields.items()
    }
    # A service field named like a server field (the judge's store_uri) takes over its option.
    found |= {name: Setting(name, field, False, _own_env(own, name, field)) for name, field in own.model_fields.items()}
    return {name: s for name, s in found.items() if _without_none(s.field.annotation) is not SecretStr}


def _own_env(cls: type, name: str, field: FieldInfo) -> tuple[str, ...]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):  # e.g. POLYGLOT_JUDGE_BASE_URL or OPENAI_BASE_URL; not the bare field name
        return tuple(c for c in alias.choices if isinstance(c, str) and c.isupper())
    return (f"{cls.model_config['env_prefix']}{name.upper()}",)


def _without_none(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _option_type(annotation: Any) -> Any:
    """What typer parses the option as; None for a JSON value."""
    base = _without_none(annotation)
    if base in (str, int, float, bool, Path) or typing.get_origin(base) in (Literal, list):
        return base
    return None


def _parameter(spec: ServiceSpec, s: Setting) -> inspect.Parameter:
    kind = _option_type(s.field.annotation) or str
    declaration = f"{s.option}/--no-{s.option[2:]}" if kind is bool else s.option
    option = typer.Option(declaration, help=_help(spec, s), show_default=False, metavar="JSON" if s.json else None)
    # None means "not given", so the environment and then the field's default still apply.
    return inspect.Parameter(
        s.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind | None, option]
    )


def _help(spec: ServiceSpec, s: Setting) -> str:
    default = s.field.default
    if s.server and s.name in ("port", "metrics_port"):
        default = getattr(spec, s.name)  # the field's own default (0 / unset) means "the service's"
    parts = [s.field.description or ""]
    if default not in (None, PydanticUndefined):
        parts.append(f"[default {_shown(default)}]")
    parts.append(f"[env {' or '.join(s.env)}]")
    return escape(" ".join(parts))


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


class ServiceCommand(TyperCommand):
    """Reports a value typer cannot parse (`--port x`, `--backend tgi`) the same way as every other bad setting."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as exc:
            fail(self.name, [(exc.param.name if exc.param else "", exc.message)])


def fail(service: str, problems: list[tuple[str, str]]) -> NoReturn:
    """Print `error: <service>: --<option> (env ...): <message>` per problem, and exit 2."""
    options = settings_of(service)
    by_env = {env: s for s in options.values() for env in s.env}
    for name, message in problems:
        s = options.get(name) or by_env.get(name.upper())
        _error(service, f"{s.where() if s else name or 'settings'}: {message}")
    raise typer.Exit(2)


def _error(service: str, message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(f'{service}: {message}')}")


def load_settings(service: str, given: dict[str, Any]) -> tuple[ServerSettings, Any]:
    """The server's and the service's settings: `given` options over the environment over the defaults."""
    options = settings_of(service)
    values = {}
    for name, value in given.items():
        try:
            values[name] = json.loads(value) if options[name].json else value
        except json.JSONDecodeError as exc:
            fail(service, [(name, f"not JSON: {exc}")])
    try:
        server = server_settings(service, **{k: v for k, v in values.items() if options[k].server})
        own = SERVICES[service].settings_class()(**{k: v for k, v in values.items() if not options[k].server})
    except ValidationError as exc:
        fail(service, [(str(e["loc"][0]) if e["loc"] else "", e["msg"]) for e in exc.errors()])
    except SettingsError as exc:  # pydantic-settings could not decode a JSON-valued variable
        field = re.search(r'field "(\w+)"', str(exc))
        fail(service, [(field.group(1) if field else "", str(exc))])
    return server, own


def _command(spec: ServiceSpec):
    def serve(**given: Any) -> None:
        server, settings = load_settings(spec.name, {k: v for k, v in given.items() if v is not None})
        for_service(spec.name)  # its calls to other services present POLYGLOT_<NAME>_TOKEN etc. first
        try:  # an open bind without auth, an unreadable token file: named like any other bad setting
            check_exposure(server)
            Authenticator.from_settings(server)
        except PolyglotError as exc:
            fail(spec.name, [(exc.field or "", exc.message)])
        except OSError as exc:
            fail(spec.name, [("callers", str(exc))])
        try:
            run_service(server, partial(spec.build_function(), settings=settings))
        except PolyglotError as exc:  # start-up failures, e.g. a missing model file
            _error(spec.name, str(exc))
            raise typer.Exit(2 if exc.code == "INVALID_ARGUMENT" else 1) from None
        except OSError as exc:  # e.g. the port is taken
            _error(spec.name, str(exc))
            raise typer.Exit(1) from None

    serve.__signature__ = inspect.Signature([_parameter(spec, s) for s in settings_of(spec.name).values()])
    return serve


for _spec in SERVICES.values():
    app.command(_spec.name, cls=ServiceCommand, help=f"Serve {_spec.grpc_service}: {_spec.description}")(
        _command(_spec)
    )


def switch_off_telemetry() -> None:
    """No hub downloads and no usage reports from any process Polyglot starts."""
    for name, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_NO_USAGE_STATS": "1",
    }.items():
        os.environ.setdefault(name, value)


def main() -> None:
    switch_off_telemetry()
    app()


if __name__ == "__main__":
    main()

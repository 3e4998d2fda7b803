"""`polyglot protocol ...`: the paper's own texts, fetched at the pinned commit (see `sources.py`).

    polyglot protocol fetch                                  # download, verify, cache (protocol.sources)
    polyglot protocol fetch --sources /data/paper --bundle paper.tar.gz   # and an offline bundle
    polyglot protocol fetch --from-bundle paper.tar.gz --sources /data/paper   # air-gapped: install a bundle
    polyglot protocol fetch --print-hashes > pins.local.yaml # the pin table with the downloaded files' SHA-256

Progress goes to stderr; stdout gets the sources directory (or, with --print-hashes, the pin table).
Exit 2: a bad option, an unpinned or mismatching file; exit 1: the download failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flows.protocol import sources
from services.common.errors import FailedPrecondition, InvalidArgument, PolyglotError
from services.common.serve import HELP_OPTIONS

app = typer.Typer(
    help="The paper's own texts (fetched at a pinned commit).", no_args_is_help=True, context_settings=HELP_OPTIONS
)
console = Console(stderr=True, soft_wrap=True)


def _progress(line: str) -> None:
    console.print(line, markup=False, highlight=False)


@app.command()
def fetch(
    sources_dir: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help=f"Where to install them; default ${sources.SOURCES_ENV} or "
            "~/.cache/polyglot/paper-sources (a config's protocol.sources).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help=f"Raw-file server: <base>/<owner>/<repo>/<commit>/<path>; default "
            f"${sources.BASE_URL_ENV} or {sources.DEFAULT_BASE_URL}."
        ),
    ] = None,
    bundle: Annotated[Path | None, typer.Option(help="Also write an offline bundle (.tar.gz) of the sources.")] = None,
    from_bundle: Annotated[
        Path | None, typer.Option(help="Install from an offline bundle instead of downloading.")
    ] = None,
    print_hashes: Annotated[
        bool,
        typer.Option(
            "--print-hashes",
            help="Download and print the pin table with the files' SHA-256 (usable as --pins once you have "
            "checked the files); install nothing.",
        ),
    ] = False,
    pins_file: Annotated[
        Path | None,
        typer.Option("--pins", help="Another pin table (default: $POLYGLOT_PAPER_PINS, else the shipped one)."),
    ] = None,
) -> None:
    """Download the paper repository's files at the pinned commit, check their SHA-256, cache them."""
    if from_bundle is not None and (base_url or print_hashes):
        console.print("[bold red]error:[/] --from-bundle installs a bundle: it takes no --base-url or --print-hashes")
        raise typer.Exit(2)
    directory = sources_dir or sources.default_sources_dir()
    try:
        pins = sources.load_pins(pins_file)
        if print_hashes:
            fetched = sources.download_all(pins, base_url, progress=_progress)
            typer.echo(sources.hash_lines(pins, fetched.hashes), nl=False)
            return
        if from_bundle is not None:
            if not from_bundle.is_file():
                raise InvalidArgument(f"{from_bundle} does not exist", field="--from-bundle")
            sources.read_bundle(from_bundle, directory, pins)
            _progress(f"installed {pins.repository}@{pins.commit[:12]} from {from_bundle} into {directory}")
        else:
            sources.fetch(directory, pins, base_url, progress=_progress)
        if bundle is not None:
            sources.write_bundle(directory, bundle, pins)
            _progress(f"wrote the offline bundle {bundle}")
    except (sources.ChecksumMismatch, sources.Unpinned, InvalidArgument) as exc:
        console.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except (FailedPrecondition, PolyglotError, OSError) as exc:
        console.print(f"[bold red]error:[/] {getattr(exc, 'message', exc)}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(str(directory))

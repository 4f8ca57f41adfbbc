"""``ksentinel serve``: the embedded reference platform in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ksentinel.cli_errors import config_option, global_config
from ksentinel.errors import ConfigError, KsentinelError


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on (127.0.0.1 or ::1)."
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option(
    "--data-dir",
    default=".ksentinel/reference",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the SQLite database, uploads and partners.json.",
)
@click.option(
    "--ready-after",
    default=None,
    type=click.FloatRange(0, 3600),
    help="Seconds an entry with content stays PRECONVERT before READY (or ERROR_CONVERTING).  [default: 2]",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="Switch on a deliberate defect (repeatable); see --list-faults.",
)
@click.option(
    "--max-chunk-mb",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest upload chunk accepted.",
)
@config_option(
    help="ksentinel.toml whose [reference] section sets the realism [env var: KSENTINEL_CONFIG; default: "
    "found walking up]. Accepted before or after the subcommand."
)
@click.option(
    "--realism",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Behave like a real Kaltura (search index lag, async conversion, redirected downloads, quirks) "
    "or like an immediate, plain platform.  [default: on]",
)
@click.option("--index-lag", type=click.FloatRange(0, 600), help="Seconds before list/count see a write.")
@click.option("--index-lag-jitter", type=click.FloatRange(0, 1), help="Share the index lag varies by.")
@click.option(
    "--sniff-media/--no-sniff-media",
    default=None,
    help="Content that is not playable media ends in ERROR_CONVERTING.",
)
@click.option(
    "--download-redirect/--no-download-redirect",
    default=None,
    help="Download URLs answer 302 to another origin that serves the bytes.",
)
@click.option(
    "--cache-extra-fields/--no-cache-extra-fields",
    default=None,
    help="Some cache hits are marked cached-with-extra-fields.",
)
@click.option(
    "--echo-invalid-ks/--no-echo-invalid-ks",
    default=None,
    help="INVALID_KS carries the refused KS, as the real server does.",
)
@click.option(
    "--final-chunk-wait",
    type=click.FloatRange(0, 600),
    help="Seconds a final parallel chunk waits for the earlier ones.",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve this Kaltura schema XML at /api_v3/api_schema.php; its actions the platform lacks answer "
    "SERVICE_FORBIDDEN.",
)
@click.option("--list-faults", is_flag=True, help="List the faults that --fault accepts and exit.")
def serve(
    host: str,
    port: int,
    data_dir: Path,
    ready_after: float | None,
    faults: tuple[str, ...],
    max_chunk_mb: int,
    realism: str | None,
    schema_file: Path | None,
    list_faults: bool,
    **behaviours: float | bool | None,
) -> None:
    """Run the embedded Kaltura-compatible reference platform in the foreground.

    It behaves like a real Kaltura by default (docs/reference-platform.md, "Realism"): each behaviour
    has a flag here and a key in the [reference] section of ksentinel.toml; flags win.
    """
    from ksentinel.config import load_config
    from ksentinel.reference.faults import CATALOGUE, parse_faults

    if list_faults:
        for fault in CATALOGUE.values():
            click.echo(f"{fault.name:22} {fault.summary}")
        return
    parse_faults(list(faults))
    from ksentinel.reference.platform import Platform, PlatformConfig
    from ksentinel.reference.realism import reference_settings
    from ksentinel.reference.server import bind, serve_forever, url_of

    file_config = load_config(global_config())
    table = dict(file_config.reference)
    if realism is not None:
        table = {key: value for key, value in table.items() if key == "ready_after"}
        table["realism"] = realism == "on"
    if ready_after is not None:
        table["ready_after"] = ready_after
    table.update({key: value for key, value in behaviours.items() if value is not None})
    settings = reference_settings(table, f"{file_config.label}: reference")
    if schema_file is not None:
        if not schema_file.is_file():
            raise ConfigError(f"--schema {schema_file}: no such file")
        from ksentinel.reference.schema_xml import load_served_schema

        load_served_schema(schema_file)  # a bad file: one line before anything listens
    config = PlatformConfig(
        data_dir=data_dir,
        ready_after=settings.ready_after,
        faults=faults,
        max_chunk_bytes=max_chunk_mb * 1024 * 1024,
        realism=settings.realism,
        schema_file=schema_file,
    )
    sock = bind(host, port)
    try:
        platform = Platform.open(config)
    except KsentinelError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from exc
    url = url_of(sock)
    click.echo(f"ksentinel reference platform: {platform.partners_source}")
    click.echo(f"  realism: {settings.describe()}")
    if faults:
        click.echo(f"  faults: {', '.join(faults)}")
    click.echo(f"ksentinel reference platform listening on {url} (Ctrl-C stops it)")
    sys.stdout.flush()
    try:
        serve_forever(platform, sock)
    finally:
        platform.close()

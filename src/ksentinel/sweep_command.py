"""``ksentinel sweep``: remove what crashed runs left on a target (tagged ksentinel)."""

from __future__ import annotations

import sys

import click

from ksentinel.cli_target import TargetSelection, target_options
from ksentinel.errors import ConfigError


@click.command("sweep")
@target_options
@click.option("--tag", "run_tag", metavar="TAG", help="Only what the run with this id created.")
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    metavar="AGE",
    help="Only objects created more than AGE ago (e.g. 30m, 2h, 1d); spares what running probes and "
    "tests are using. 0s takes everything tagged.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def sweep(selection: TargetSelection, run_tag: str | None, older_than: str, dry_run: bool) -> None:
    """Remove leftovers of crashed runs: entries tagged ksentinel and ksentinel-* upload tokens.

    Needs a target (--target, --url, KSENTINEL_TARGET or default_target): it never runs against the
    throw-away embedded platform.
    """
    from ksentinel.flows import Sessions
    from ksentinel.flows.preflight import check_target
    from ksentinel.flows.sweep import parse_age
    from ksentinel.flows.sweep import sweep as sweep_target
    from ksentinel.kaltura.api import KalturaApi

    age = parse_age(older_than)
    _config, resolved = selection.resolve()
    target = resolved.target
    if target is None:
        raise ConfigError(
            "sweep needs a target: --target NAME, --url URL --partner-id N, KSENTINEL_TARGET or "
            "default_target in ksentinel.toml (it never sweeps the throw-away embedded platform)"
        )
    credentials = check_target(target)
    verb = "would remove" if dry_run else "removed"
    with KalturaApi(target.url, partner_id=target.partner_id, timeout=target.timeout) as api:
        result = sweep_target(
            api.with_ks(Sessions(credentials).admin()),
            run_tag=run_tag,
            older_than=age,
            dry_run=dry_run,
            on_item=lambda kind, object_id: click.echo(f"  {verb} {kind} {object_id}"),
        )
    click.echo(
        f"sweep: {verb} {len(result.entries)} entries and {len(result.tokens)} upload tokens from {target.name}"
    )
    for error in result.errors:
        click.echo(f"  could not remove {error}", err=True)
    for note in result.incomplete:
        click.echo(f"  incomplete: {note}", err=True)
    sys.exit(1 if result.errors or result.incomplete else 0)

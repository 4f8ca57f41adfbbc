"""``ksentinel init DIR``: the shipped suites copied out for a team to edit, with a starter ksentinel.toml.

Every command run in DIR (or below it, for ksentinel.toml) then uses the copy: ``./contracts``,
``./load``, ``./dashboards`` and ``./probes`` win over the suites inside the installed package.
"""

from __future__ import annotations

from pathlib import Path

import click

from ksentinel.errors import ConfigError

STARTER_CONFIG = """\
# ksentinel.toml: found by walking up from the working directory (docs/ARCHITECTURE.md, "Configuration").
# Secrets never go here: name the environment variable (or file) that holds them.

# default_target = "staging"
#
# [targets.staging]
# url = "https://kaltura.example.com"
# partner_id = 12345
# admin_secret_env = "STAGING_ADMIN_SECRET"
# environment = "staging"          # "production" makes every run read-only and rate-capped
#
# [slo]                            # one source for the load gate and the alert rules (docs/slo.md)
# error_ratio = 0.01
#
# [dashboards]
# runbook_base_url = "https://wiki.example.com/ksentinel/runbooks"
"""


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--force", is_flag=True, help="Replace suite folders that already exist in DIRECTORY.")
def init_command(directory: Path, force: bool) -> None:
    """Copy the contract, load, dashboards and probe suites into DIRECTORY to edit them.

    Writes DIRECTORY/contracts, load, dashboards and probes, and a commented ksentinel.toml when
    there is none. Every ksentinel command run in DIRECTORY uses these copies instead of the ones
    shipped with ksentinel. An existing suite folder is kept (exit 2) unless --force.
    """
    from ksentinel.suites import SUITES, copy_suites

    written = copy_suites(directory, tuple(SUITES), force=force)
    config = directory / "ksentinel.toml"
    if not config.exists():
        try:
            config.write_text(STARTER_CONFIG, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {config}: {exc.strerror or exc}") from exc
        written.append(config)
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo(f"init: {len(written)} folders and files in {directory}; run ksentinel there to use them")

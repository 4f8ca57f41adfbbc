"""``ksentinel probe``: the click group (``main.add_command(probe_group)`` in ``cli.py``).

Also runnable on its own: ``python -m ksentinel.probe serve``. Known errors print one line and
exit 2 here too, so the group behaves the same with or without the main command around it.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import logging
import os
import signal
import sys

import click

from ksentinel.cli_errors import OneLineErrorGroup
from ksentinel.cli_target import TargetSelection, check_faults, fault_option, target_options
from ksentinel.config import check_adhoc_name
from ksentinel.config.values import Invalid, did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.flows import all_flows
from ksentinel.probe.config import DEFAULT_LISTEN, Pair, ProbeConfig, load_probe_config, parse_listen
from ksentinel.probe.door import DEFAULT_MIN_INTERVAL
from ksentinel.probe.targets import (
    TargetChoice,
    choose_targets,
    open_probe_targets,
    read_only,
    schedule,
    sharded,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # mallopt parameter numbers in glibc's malloc.h
#: How long a thread may hold the GIL while another waits for it (CPython's default is 5 ms). Flow
#: threads parse and build bodies; a scrape arriving meanwhile waited up to 5 ms for each hand-over,
#: which was the whole tail of the /metrics latency. 1 ms keeps that tail under the 10 ms goal.
SWITCH_INTERVAL = 0.001
log = logging.getLogger(__name__)


@click.group("probe", cls=OneLineErrorGroup)
def probe_group() -> None:
    """Run the flows on a schedule and export Prometheus metrics (or one pass for cron/CI)."""


@probe_group.command("serve")
@target_options
@click.option(
    "--listen",
    metavar="HOST:PORT",
    envvar="KSENTINEL_PROBE_LISTEN",
    show_envvar=True,
    help=f"Address for /metrics, /probe and /-/ready [default: [probes] listen, else {DEFAULT_LISTEN}]; "
    "port 0 picks a free one.",
)
@click.option(
    "--web.config.file",
    "--web-config-file",
    "web_config_file",
    metavar="FILE",
    envvar="KSENTINEL_PROBE_WEB_CONFIG",
    show_envvar=True,
    help="TLS and basic auth for every endpoint: a Prometheus exporter web configuration file "
    "(tls_server_config, http_server_config, basic_auth_users; docs/probes.md).",
)
@click.option(
    "--on-demand-interval",
    type=click.FloatRange(min=0),
    default=DEFAULT_MIN_INTERVAL,
    show_default=True,
    envvar="KSENTINEL_PROBE_ON_DEMAND_INTERVAL",
    show_envvar=True,
    metavar="S",
    help="Seconds from one /probe run of a (target, flow) to the next; sooner is HTTP 429 (0: no minimum).",
)
@fault_option
def serve(
    selection: TargetSelection,
    listen: str | None,
    web_config_file: str | None,
    on_demand_interval: float,
    faults: tuple[str, ...],
) -> None:
    """Run each configured (target, flow) on its interval and serve /metrics and /probe.

    The schedule is the [probes] section of ksentinel.toml (or a standalone probes file given
    with --config); a --target/--url replaces its targets. Stops cleanly on SIGINT/SIGTERM,
    after the runs in progress have cleaned up.
    """
    from ksentinel.probe.exporter import Exporter
    from ksentinel.probe.web_config import load_web_config

    _tune_malloc()
    sys.setswitchinterval(SWITCH_INTERVAL)
    probes = load_probe_config(selection.config)
    address = listen or probes.listen or DEFAULT_LISTEN
    try:
        host, port = parse_listen(address, "--listen" if listen else "listen")
    except Invalid as exc:
        raise ConfigError(str(exc)) from None
    web = load_web_config(web_config_file) if web_config_file else None
    choice = _choose(probes, selection)
    check_faults(faults, embedded=all(target is None for target in choice.targets))
    with open_probe_targets(choice, faults=faults, config=probes.config) as targets:
        pairs, notices = sharded(probes, *read_only(schedule(probes, choice, list(targets)), targets))
        exporter = Exporter(probes, targets, pairs, min_interval=on_demand_interval, web=web)

        def listening(bound: tuple[str, int]) -> None:
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            click.echo(
                f"ksentinel probe: {len(pairs)} scheduled flow{'s' if len(pairs) != 1 else ''} on "
                f"{len(targets)} target{'s' if len(targets) != 1 else ''} "
                f"({', '.join(sorted(targets))}) from {probes.source}"
            )
            for notice in notices:
                click.echo(f"ksentinel probe: {notice}")
            if web is not None:
                click.echo(f"ksentinel probe: web configuration {web.source}: {web.describe()}")
            click.echo(
                f"ksentinel probe listening on {exporter.scheme}://{shown}:{bound[1]} (/metrics, /probe, /-/ready)"
            )
            sys.stdout.flush()
            gc.freeze()  # modules and series live as long as the process (probe/gc_pacing.py)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, exporter.stop)
            pacing = loop.create_task(exporter.full_collections.run(exporter.first_round_done))
            try:
                await exporter.serve(host, port, on_listening=listening)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None
            finally:
                pacing.cancel()

        asyncio.run(main())
    click.echo("ksentinel probe: stopped")


@probe_group.command("run")
@target_options
@click.option(
    "--once",
    is_flag=True,
    help="One pass over the flows, then exit: what probe run always does, so the flag may be left out "
    "(the schedule is probe serve).",
)
@click.option(
    "--flow",
    "flows",
    multiple=True,
    metavar="NAME",
    help="Run only this flow (repeatable) [default: the flows of the [probes] schedule].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="KSENTINEL_PROBE_TIMEOUT",
    show_envvar=True,
    metavar="S",
    help="Seconds each flow may take [default: its timeout in the schedule].",
)
@fault_option
def run(
    selection: TargetSelection,
    once: bool,
    flows: tuple[str, ...],
    timeout: float | None,
    faults: tuple[str, ...],
) -> None:
    """One pass over the flows for cron or CI: a table of flows and steps, exit 1 if any failed.

    Always one pass (--once says so and changes nothing); probe serve runs the schedule.

    Exit 0 when every flow succeeded, 1 when one failed, 2 on a usage error or a target that
    cannot be probed at all (unreachable, not a Kaltura API, wrong secret).
    """
    from ksentinel.flows.preflight import check_target
    from ksentinel.probe.once import render_table, run_pass

    probes = load_probe_config(selection.config)
    known = all_flows()
    for name in flows:
        if name not in known:
            detail = did_you_mean(name, sorted(known), otherwise=f"; known flows: {', '.join(sorted(known))}")
            raise ConfigError(f"--flow: unknown flow '{name}'{detail}")
    choice = _choose(probes, selection)
    check_faults(faults, embedded=all(target is None for target in choice.targets))
    with open_probe_targets(choice, faults=faults, config=probes.config) as targets:
        for probe_target in targets.values():
            check_target(probe_target.target)
        pairs = schedule(probes, choice, list(targets))
        if flows:
            default_timeout = probes.default_timeout
            timing = {(p.target, p.flow): p.timeout for p in pairs}
            pairs = [
                Pair(name, flow, 0.0, timing.get((name, flow), default_timeout))
                for name in targets
                for flow in dict.fromkeys(flows)
            ]
        if timeout is not None:
            pairs = [Pair(p.target, p.flow, p.interval, timeout) for p in pairs]
        pairs, notices = read_only(pairs, targets)
        result = run_pass(targets, pairs, probes.options, notices=notices)
    click.echo(render_table(result))
    sys.exit(result.exit_code)


def _choose(probes: ProbeConfig, selection: TargetSelection) -> TargetChoice:
    """The targets to probe; ``--target-name`` names the ad-hoc ``--url`` target (its ``target`` label)."""
    choice = choose_targets(probes, selection)
    if selection.adhoc_name is None:
        return choice
    targets = [target for target in choice.targets if target is not None and target.adhoc]
    if len(targets) != 1 or len(choice.targets) != 1:
        raise ConfigError("--target-name names an ad-hoc target: add --url URL --partner-id N")
    name = check_adhoc_name(selection.adhoc_name)
    return TargetChoice((dataclasses.replace(targets[0], name=name),), choice.override)


def _tune_malloc() -> None:
    """glibc malloc for a long-running process with worker threads (Linux; env settings win).

    * Two arenas instead of up to eight per CPU (``$MALLOC_ARENA_MAX``): glibc gives threads their
      own arenas, and memory freed in one is not reused by another.
    * A fixed mmap threshold of 128 KiB (``$MALLOC_MMAP_THRESHOLD_``): every run allocates and
      frees a few large buffers (upload content, multipart bodies, downloads); by default glibc
      raises the threshold after the first such free and then carves them from the heap, where
      they fragment it. Above the threshold they are mapped and returned to the system on free.

    Without both, the resident size creeps up for a long time before it levels off.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        if not os.environ.get("MALLOC_ARENA_MAX"):
            libc.mallopt(_M_ARENA_MAX, 2)
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc
        log.debug("mallopt unavailable; malloc left as it is")

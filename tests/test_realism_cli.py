"""No false alarm on a real Kaltura: ``ksentinel contract`` and ``ksentinel probe run --once`` stay green
through a proxy that gives a plain reference platform real SaaS behaviour, one behaviour at a time and
all at once (the independent check of issue 11, run here ourselves).

The proxy (tests/realism_proxy.py) adds search index lag, ``cached-with-extra-fields`` hits, download
redirects to another host, ``INVALID_KS`` echoing the KS and conversion that fails on what is not
media, in front of a platform with its own realism switched off, so every behaviour comes from the
proxy and nowhere else. The commands run as a user runs them, in a subprocess with ``--url``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksentinel.flows import all_flows
from tests.conftest import Reference, start_reference
from tests.helpers import target_env
from tests.realism_proxy import RealismProxy

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300
BEHAVIOURS: dict[str, dict[str, Any]] = {
    "index-lag": {"lag": 1.0},
    "extra-fields": {"extra_fields": True},
    "redirect": {"redirect": True},
    "echo-ks": {"echo_ks": True},
    "convert": {"convert": True},
}
FLOWS = tuple(sorted(all_flows()))  # every flow of the catalogue, not only the default schedule
ALL = {key: value for options in BEHAVIOURS.values() for key, value in options.items()}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """A clean platform without realism of its own (the proxy adds it)."""
    with start_reference(tmp_path_factory.mktemp("plain"), ready_after=0.5) as ref:
        yield ref


def _run(tmp: Path, url: str, ref: Reference, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    env.update(target_env(ref))
    env["KSENTINEL_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=tmp,
        check=False,
    )


def _contract(tmp: Path, url: str, ref: Reference) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    out = tmp / "out"
    proc = _run(
        tmp,
        url,
        ref,
        "contract",
        "--profile",
        "quick",
        "--suite",
        str(REPO / "contracts"),
        "--report",
        str(out),
    )
    data = out / "contract.json"
    return proc, json.loads(data.read_text())["contract"]["results"] if data.exists() else []


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stdout[-4000:] + "\n" + proc.stderr[-3000:]).strip()


@pytest.mark.slow
@pytest.mark.timeout(2 * TIMEOUT)
@pytest.mark.parametrize("behaviour", [*BEHAVIOURS, "all"])
def test_the_probe_stays_green_through_real_saas_behaviour(
    behaviour: str, plain: Reference, tmp_path: Path
) -> None:
    options = ALL if behaviour == "all" else BEHAVIOURS[behaviour]
    with RealismProxy(plain.url, **options) as proxy:
        flows = [arg for flow in FLOWS for arg in ("--flow", flow)]
        proc = _run(tmp_path, proxy.url, plain, "probe", "run", "--once", *flows)
        stats = dict(proxy.stats)
    assert proc.returncode == 0, _output(proc)
    assert f"probe: {len(FLOWS)} of {len(FLOWS)} flows succeeded" in proc.stdout, _output(proc)
    # the behaviour really happened on the way (not a proxy that did nothing)
    if "lag" in options:
        assert stats.get("hidden", 0) > 0, stats
        assert "INDEX LAG" in proc.stdout, proc.stdout
    if options.get("redirect"):
        assert stats.get("redirects", 0) > 0, stats
    if options.get("extra_fields"):
        assert stats.get("extra_fields", 0) > 0, stats


@pytest.mark.slow
@pytest.mark.timeout(2 * TIMEOUT)
@pytest.mark.parametrize("behaviour", [*BEHAVIOURS, "all"])
def test_the_contract_suite_stays_green_through_real_saas_behaviour(
    behaviour: str, plain: Reference, tmp_path: Path
) -> None:
    options = ALL if behaviour == "all" else BEHAVIOURS[behaviour]
    with RealismProxy(plain.url, **options) as proxy:
        proc, results = _contract(tmp_path, proxy.url, plain)
        stats = dict(proxy.stats)
    assert proc.returncode == 0, _output(proc)
    assert results, _output(proc)
    broken = [r for r in results if r["outcome"] in ("failed", "error")]
    assert broken == [], broken
    advisories = [r for r in results if r["outcome"] == "advisory"]
    if options.get("echo_ks"):
        # the echoed KS is reported, with its evidence, never as a failure
        assert advisories and "ks" in json.dumps(advisories).lower(), results
        assert stats.get("echoed_ks", 0) > 0, stats
    else:
        assert advisories == []
    flows = {r["subject"]: r["outcome"] for r in results if r["kind"] == "flow"}
    assert flows.get("upload") == "passed", flows

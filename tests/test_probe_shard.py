"""Probe sharding (``[probes] shard = "i/n"``, ``KSENTINEL_PROBE_SHARD``): n replicas cover each pair once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ksentinel.config.values import Invalid
from ksentinel.errors import ConfigError
from ksentinel.probe.config import Pair, load_probe_config
from ksentinel.probe.shard import Shard, parse_shard, shard_of
from tests.conftest import start_reference

FLEET = [Pair(f"partner-{p:03d}", f"flow-{f}", 60.0, 20.0) for p in range(100) for f in range(10)]


@pytest.mark.parametrize(
    ("text", "shard"),
    [
        ("0/3", Shard(0, 3)),
        (" 2/3 ", Shard(2, 3)),
        ("ksentinel-probe-1/3", Shard(1, 3)),
        ("0/1", Shard(0, 1)),
    ],
)
def test_parse(text: str, shard: Shard) -> None:
    assert parse_shard(text, "shard") == shard


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3/3", "shard: replica 3 of 3 does not exist (i counts from 0 to 2)"),
        ("1/0", "shard: n must be from 1 to 1024, got 0"),
        ("a/b", "shard: expected 'i/n'"),
        ("-1/3", "shard: expected 'i/n'"),
        (3, "shard: expected 'i/n'"),
        ("", "shard: expected 'i/n'"),
    ],
)
def test_parse_refuses(value: object, message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        parse_shard(value, "shard")


def test_three_replicas_cover_a_fleet_exactly_once() -> None:
    shares = [Shard(i, 3).share(FLEET) for i in range(3)]
    counted = Counter((p.target, p.flow) for share in shares for p in share)
    assert set(counted) == {(p.target, p.flow) for p in FLEET}
    assert set(counted.values()) == {1}
    sizes = [len(share) for share in shares]
    assert all(abs(size - len(FLEET) / 3) < 0.1 * len(FLEET) / 3 for size in sizes), sizes  # balanced


def test_a_pair_keeps_its_replica_when_the_schedule_changes() -> None:
    before = {(p.target, p.flow): i for i in range(3) for p in Shard(i, 3).share(FLEET)}
    grown = [*FLEET, *(Pair(f"partner-new-{n}", "flow-0", 60.0, 20.0) for n in range(50))]
    after = {(p.target, p.flow): i for i in range(3) for p in Shard(i, 3).share(grown)}
    assert all(after[key] == replica for key, replica in before.items())


def test_the_hash_is_the_same_in_every_process() -> None:
    expected = [shard_of(p.target, p.flow, 7) for p in FLEET[:50]]
    code = (
        "from ksentinel.probe.shard import shard_of; "
        "print([shard_of(f'partner-{p:03d}', f'flow-{f}', 7) for p in range(5) for f in range(10)])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert out.strip() == str(expected)


def test_config_key_and_variable(tmp_path: Path) -> None:
    (tmp_path / "ksentinel.toml").write_text('[probes]\nshard = "1/4"\n')
    assert load_probe_config(cwd=tmp_path, environ={}).shard == Shard(1, 4)
    # the variable wins over the file
    assert load_probe_config(cwd=tmp_path, environ={"KSENTINEL_PROBE_SHARD": "probe-3/4"}).shard == Shard(
        3, 4
    )
    (tmp_path / "ksentinel.toml").write_text('[probes]\nshard = "4/4"\n')
    with pytest.raises(ConfigError, match=r"ksentinel.toml: probes.shard: replica 4 of 4 does not exist"):
        load_probe_config(cwd=tmp_path, environ={})
    (tmp_path / "ksentinel.toml").write_text("[probes]\nshard = 1\n")
    with pytest.raises(ConfigError, match=r"probes.shard: expected 'i/n'"):
        load_probe_config(cwd=tmp_path, environ={})
    (tmp_path / "ksentinel.toml").write_text("[probes]\nshards = '1/2'\n")
    with pytest.raises(ConfigError, match=r"probes.shards: unknown key; did you mean 'shard'\?"):
        load_probe_config(cwd=tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"^KSENTINEL_PROBE_SHARD: expected 'i/n'"):
        (tmp_path / "ksentinel.toml").write_text("[probes]\n")
        load_probe_config(cwd=tmp_path, environ={"KSENTINEL_PROBE_SHARD": "half"})


# --- three exporters against one platform --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scheduled(text: str) -> set[tuple[str, str]]:
    """The (target, flow) pairs an exporter schedules: its ``ksentinel_probe_interval_seconds`` series."""
    return {
        (sample.labels["target"], sample.labels["flow"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ksentinel_probe_interval_seconds"
    }


@pytest.mark.slow
def test_three_exporter_replicas_probe_every_pair_once(tmp_path: Path) -> None:
    names = [f"partner{n}" for n in range(6)]
    flows = ["session", "list"]
    with start_reference(tmp_path / "ref") as ref:
        config = (
            '[probes]\ntargets = [{}]\nflows = ["session", "list"]\ninterval = 600\ntimeout = 30\n'.format(
                ", ".join(f'"{n}"' for n in names)
            )
            + "".join(
                f'\n[targets.{n}]\nurl = "{ref.url}"\npartner_id = {ref.p1.id}\nadmin_secret_env = "SHARD_SECRET"\n'
                for n in names
            )
        )
        (tmp_path / "ksentinel.toml").write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "LOCUST_"))}
        env["SHARD_SECRET"] = ref.p1.admin_secret
        replicas = []
        shards = ["0/3", "ksentinel-probe-1/3", "2/3"]  # the pod-name form, as a StatefulSet passes it
        try:
            for shard in shards:
                port = _free_port()
                log = (tmp_path / f"replica-{len(replicas)}.log").open("w")
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "ksentinel.cli",
                        "probe",
                        "serve",
                        "--listen",
                        f"127.0.0.1:{port}",
                    ],
                    cwd=tmp_path,
                    env={**env, "KSENTINEL_PROBE_SHARD": shard},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
                replicas.append((proc, port, log))
            scheduled: list[set[tuple[str, str]]] = []
            with httpx.Client(timeout=5) as http:
                for proc, port, log in replicas:
                    deadline = time.monotonic() + 60
                    while True:
                        assert proc.poll() is None, (tmp_path / Path(log.name).name).read_text()
                        try:
                            answer = http.get(f"http://127.0.0.1:{port}/metrics")
                            if answer.status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        assert time.monotonic() < deadline, "the exporter did not start"
                        time.sleep(0.2)
                    scheduled.append(_scheduled(answer.text))
        finally:
            for proc, _port, _log in replicas:
                proc.terminate()
            for proc, _port, log in replicas:
                proc.wait(60)
                log.close()
        every = {(n, f) for n in names for f in flows}
        counted = Counter(pair for share in scheduled for pair in share)
        assert set(counted) == every, counted
        assert set(counted.values()) == {1}, counted
        for index, shard in enumerate(shards):
            text = (tmp_path / f"replica-{index}.log").read_text()
            assert (
                f"shard {parse_shard(shard, 's')}: {len(scheduled[index])} of {len(every)} scheduled" in text
            ), text

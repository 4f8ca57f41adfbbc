"""The exporter's door: /probe one at a time and spaced per pair, read-only in production, and TLS plus
basic auth (or a bearer token) on every endpoint from a Prometheus web configuration file.

The last test scrapes ``ksentinel probe serve --web.config.file`` with a real Prometheus over TLS and
basic auth (Debian's ``prometheus`` package; skipped without it unless ``KSENTINEL_REQUIRE_SYSTEM_DEPS=1``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import ipaddress
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bcrypt
import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ksentinel.config import Target
from ksentinel.errors import ConfigError
from ksentinel.probe.config import ProbeConfig, Row
from ksentinel.probe.door import Door, flow_writes, write_refusal
from ksentinel.probe.exporter import Exporter
from ksentinel.probe.http import Request
from ksentinel.probe.web_config import WebConfig, WebGuard, load_web_config, parse_duration
from tests.conftest import Reference, start_reference
from tests.test_probe_exporter import bad_server, probe_target, reference_target, serving, value
from tests.test_probe_prometheus import Child, _free_port, _prometheus, probe_command, query, wait_until

PASSWORD = "correct horse battery staple"
TOKEN = "kst-7f1c2a9d0b3e4f5a6b7c8d9e0f1a2b3c"
LISTENING = re.compile(r"listening on (https?://\S+)")


# --- helpers --------------------------------------------------------------------------------------


def with_environment(target: Target, environment: str, *, allow_writes: bool = False) -> Target:
    """``target`` as a production/staging/test target, with or without ``environment`` on Target."""
    names = {f.name for f in dataclasses.fields(target)}
    if {"environment", "allow_writes"} <= names:
        return dataclasses.replace(target, environment=environment, allow_writes=allow_writes)
    object.__setattr__(target, "environment", environment)  # before config/ declares them
    object.__setattr__(target, "allow_writes", allow_writes)
    return target


@dataclasses.dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    usage: Any = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if usage == "server":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif usage == "client":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
    return path


def make_pki(tmp: Path, server_name: str = "ksentinel probe") -> Pki:
    """A CA with a server certificate for 127.0.0.1/localhost, and a client CA with one client."""
    tmp.mkdir(parents=True, exist_ok=True)
    ca_key, client_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _issue(f"{server_name} test CA", ca_key, None, ca=True)
    client_ca = _issue(f"{server_name} test client CA", client_ca_key, None, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = _issue(server_name, server_key, (ca.subject, ca_key), ca=False, usage="server")
    client = _issue("prometheus", client_key, (client_ca.subject, client_ca_key), ca=False, usage="client")
    return Pki(
        ca=_write(tmp / "ca.crt", ca),
        cert=_write(tmp / "server.crt", server, server_key),
        key=tmp / "server.key",
        client_ca=_write(tmp / "client-ca.crt", client_ca),
        client_cert=_write(tmp / "client.crt", client, client_key),
        client_key=tmp / "client.key",
    )


def bcrypt_hash(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def web_config(tmp: Path, text: str, name: str = "web.yml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def exporter_for(
    targets: dict[str, Any], *, web: WebConfig | None = None, min_interval: float = 30.0
) -> Exporter:
    """An exporter with nothing scheduled: only /probe runs, so each test controls every run."""
    probes = ProbeConfig(rows=(Row(flows=("session",), interval=60.0, timeout=5.0),), jitter=0.1)
    return Exporter(probes, targets, [], min_interval=min_interval, web=web)


@contextlib.contextmanager
def serving_url(exporter: Exporter) -> Iterator[str]:
    with serving(exporter) as url:
        yield url.replace("http://", f"{exporter.scheme}://")


def one_line(response: httpx.Response) -> str:
    assert response.text.endswith("\n") and response.text.count("\n") == 1, response.text
    return response.text.strip()


# --- the door: unit rules -------------------------------------------------------------------------


def test_door_admits_one_run_per_pair_and_spaces_them() -> None:
    now = [100.0]
    door = Door(10.0, clock=lambda: now[0])
    assert door.enter("t", "upload", 4.0) is None
    busy = door.enter("t", "upload", 4.0)
    assert busy is not None and busy.retry_after == 10 and "in progress" in busy.reason
    assert door.enter("t", "session", 4.0) is None, "another pair is not held up"
    assert door.enter("u", "upload", 4.0) is None, "nor another target"
    now[0] += 2.5
    door.leave("t", "upload")
    soon = door.enter("t", "upload", 4.0)
    assert soon is not None and soon.retry_after == 8 and "at least 10s apart" in soon.reason
    now[0] += 7.4
    assert door.enter("t", "upload", 4.0).retry_after == 1  # type: ignore[union-attr]
    now[0] += 0.1
    assert door.enter("t", "upload", 4.0) is None, "start to start: 10 s after the last start"
    # a run longer than the interval: busy until it ends, then at once
    door.leave("t", "upload")
    now[0] += 30.0
    assert door.enter("t", "upload", 60.0) is None
    now[0] += 20.0
    assert door.enter("t", "upload", 4.0).retry_after == 40  # type: ignore[union-attr]
    now[0] += 45.0  # past its timeout and still going (cleaning up): ask again in a second
    assert door.enter("t", "upload", 4.0).retry_after == 1  # type: ignore[union-attr]
    door.leave("t", "upload")
    assert door.enter("t", "upload", 4.0) is None

    unspaced = Door(0.0, clock=lambda: now[0])
    assert unspaced.enter("t", "list", 1.0) is None
    assert unspaced.enter("t", "list", 1.0) is not None, "one at a time even without an interval"
    unspaced.leave("t", "list")
    assert unspaced.enter("t", "list", 1.0) is None
    with pytest.raises(ValueError):
        Door(-1.0)


def test_write_flows_are_refused_on_production_without_allow_writes() -> None:
    prod = SimpleNamespace(environment="production", allow_writes=False)
    prod_rw = SimpleNamespace(environment="production", allow_writes=True)
    staging = SimpleNamespace(environment="staging", allow_writes=False)
    legacy = SimpleNamespace()  # a target from before environments: a test target
    reason = write_refusal("prod", prod, "upload")
    assert reason is not None and "\n" not in reason and "production" in reason and "allow_writes" in reason
    assert write_refusal("prod", prod, "session") is None
    assert write_refusal("prod", prod_rw, "upload") is None
    assert write_refusal("staging", staging, "upload") is None
    assert write_refusal("old", legacy, "delete") is None
    # the guess by name (flows without a marker): only session reads; list and browse seed entries
    assert [name for name in ("session", "list", "browse", "upload", "cache") if flow_writes(name)] == [
        "list",
        "browse",
        "upload",
        "cache",
    ]
    # a flow's own marker wins over the guess
    assert write_refusal("prod", prod, "upload", SimpleNamespace(writes=False)) is None
    assert write_refusal("prod", prod, "session", SimpleNamespace(writes=True)) is not None


# --- the door on a running exporter -----------------------------------------------------------------


@pytest.fixture(scope="module")
def door_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Reference]]:
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(start_reference(tmp_path_factory.mktemp("door-ref")))
        slow = stack.enter_context(bad_server("slow"))
        targets = {
            "ref": probe_target(reference_target(ref, "ref")),
            "prod": probe_target(with_environment(reference_target(ref, "prod"), "production")),
            "prod-rw": probe_target(
                with_environment(reference_target(ref, "prod-rw"), "production", allow_writes=True)
            ),
            "slow": probe_target(reference_target(ref, "slow", url=slow)),
        }
        url = stack.enter_context(serving_url(exporter_for(targets, min_interval=30.0)))
        yield url, ref


def test_concurrent_probes_of_one_pair_run_once(door_env: tuple[str, Reference]) -> None:
    url, _ = door_env
    first: dict[str, httpx.Response] = {}
    params = {"target": "slow", "flow": "session"}
    scrape = {"X-Prometheus-Scrape-Timeout-Seconds": "2.5"}  # the run takes its 2 s timeout

    def probe() -> None:
        first["response"] = httpx.get(f"{url}/probe", params=params, headers=scrape, timeout=15)

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(0.6)
    second = httpx.get(f"{url}/probe", params=params, headers=scrape, timeout=15)
    other = httpx.get(f"{url}/probe", params={"target": "ref", "flow": "session"}, timeout=15)
    thread.join(15)
    assert second.status_code == 429, second.text
    retry = int(second.headers["Retry-After"])
    assert 1 <= retry <= 30
    assert "in progress" in one_line(second)
    assert first["response"].status_code == 200
    assert value(first["response"].text, "probe_success") == 0.0  # the slow target timed out
    assert other.status_code == 200 and value(other.text, "probe_success") == 1.0, "other pairs run"


def test_a_pair_probed_again_too_soon_is_told_when_to_retry(door_env: tuple[str, Reference]) -> None:
    url, _ = door_env
    params = {"target": "ref", "flow": "multirequest"}
    ok = httpx.get(f"{url}/probe", params=params, timeout=15)
    assert ok.status_code == 200 and value(ok.text, "probe_success") == 1.0, ok.text
    again = httpx.get(f"{url}/probe", params=params, timeout=15)
    assert again.status_code == 429
    assert 25 <= int(again.headers["Retry-After"]) <= 30
    assert "at least 30s apart" in one_line(again)
    # debug runs count too; a refusal is not a run (it does not push the next allowed start back)
    debug = httpx.get(f"{url}/probe", params={**params, "debug": "true"}, timeout=15)
    assert debug.status_code == 429
    assert int(debug.headers["Retry-After"]) <= int(again.headers["Retry-After"])


def test_production_targets_run_only_read_only_flows_on_demand(door_env: tuple[str, Reference]) -> None:
    url, ref = door_env
    before = len(ref.server.platform.store.all_entries(include_deleted=True))
    for flow in ("upload", "delete", "list", "cache"):
        refused = httpx.get(f"{url}/probe", params={"target": "prod", "flow": flow}, timeout=15)
        assert refused.status_code == 403, (flow, refused.text)
        reason = one_line(refused)
        assert f"flow '{flow}' writes" in reason and "'prod' is a production target" in reason
    assert len(ref.server.platform.store.all_entries(include_deleted=True)) == before, "nothing written"
    # a 403 is not a run: asking again is a 403 again, never a 429
    assert httpx.get(f"{url}/probe", params={"target": "prod", "flow": "upload"}).status_code == 403
    read = httpx.get(f"{url}/probe", params={"target": "prod", "flow": "session"}, timeout=15)
    assert read.status_code == 200 and value(read.text, "probe_success") == 1.0
    allowed = httpx.get(f"{url}/probe", params={"target": "prod-rw", "flow": "delete"}, timeout=15)
    assert allowed.status_code == 200 and value(allowed.text, "probe_success") == 1.0, allowed.text


# --- the web configuration file -------------------------------------------------------------------


def test_the_documented_example_loads(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    hashed = bcrypt_hash(PASSWORD)
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = web_config(
        tmp_path,
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: client-ca.crt
  min_version: TLS12
http_server_config:
  http2: true
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {hashed}
rate_limit:
  interval: 100ms
  burst: 20
ksentinel_bearer_token_file: token
""",
    )
    config = load_web_config(path)
    assert config.tls is not None and config.tls.cert_file == pki.cert  # relative to the file
    assert config.headers["X-Frame-Options"] == "deny"
    assert config.users == {"prometheus": hashed.encode()}
    assert config.bearer_token == TOKEN.encode()
    assert config.rate_limit is not None and config.rate_limit.interval == pytest.approx(0.1)
    assert config.ssl_context() is not None
    assert "TLS with client certificates" in config.describe() and hashed not in repr(config)
    assert parse_duration("1m30s") == 90.0 and parse_duration("0") == 0.0
    empty = web_config(tmp_path, "", "empty.yml")
    assert not load_web_config(empty).auth_required and load_web_config(empty).tls is None


HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_user:\n  a: x\n", "basic_auth_user: unknown key; did you mean 'basic_auth_users'?"),
        ("basic_auth_users:\n  alice: plaintext-password\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users: [alice]\n", "basic_auth_users: expected a mapping"),
        ("tls_server_config:\n  cert_file: server.crt\n", "missing one of key or key_file"),
        ("tls_server_config:\n  key_file: server.key\n", "missing one of cert or cert_file"),
        ("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n", "cannot read"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
            "cannot load the certificate",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS14\n",
            "min_version: unknown TLS version 'TLS14'",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
            "  max_version: TLS12\n",
            "min_version is above max_version",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            "a client CA is configured without client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert is not supported",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "cipher_suites: not supported",
        ),
        ("tls_server_config:\n  cert_fle: server.crt\n", "cert_fle: unknown key; did you mean 'cert_file'?"),
        ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "'X-Powered-By' can not be configured"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value 'allow'"),
        ("rate_limit:\n  interval: fast\n  burst: 3\n", "rate_limit.interval: expected a duration"),
        ("rate_limit:\n  interval: 1s\n", "rate_limit.burst: expected a whole number"),
        ("ksentinel_bearer_token_file: missing-token\n", "cannot read"),
        ("basic_auth_users:\n  alice: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "the file: expected a mapping"),
    ],
)
def test_bad_web_configuration_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    make_pki(tmp_path)
    path = web_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    error = str(caught.value)
    assert "\n" not in error and error.startswith(f"{path}: "), error
    assert message in error, error
    assert "plaintext-password" not in error and HASH not in error


def test_serve_with_a_bad_web_configuration_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ksentinel.probe.command import probe_group

    for name in list(os.environ):
        if name.startswith("KSENTINEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    path = web_config(tmp_path, f"basic_auth_users:\n  alice: {HASH[:-3]}\n")
    for option in ("--web.config.file", "--web-config-file"):
        result = CliRunner().invoke(probe_group, ["serve", "--listen", "127.0.0.1:0", option, str(path)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "basic_auth_users.alice: not a bcrypt hash" in lines[0], result.output
        assert HASH[:-3] not in result.output
    missing = CliRunner().invoke(probe_group, ["serve", "--web.config.file", str(tmp_path / "nope.yml")])
    assert missing.exit_code == 2 and "cannot read the web configuration file" in missing.output


# --- authentication and TLS on a running exporter -------------------------------------------------


@pytest.fixture(scope="module")
def ref_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    with start_reference(tmp_path_factory.mktemp("auth-ref")) as ref:
        yield ref


def test_basic_auth_guards_every_endpoint(
    tmp_path: Path, ref_target: Reference, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = web_config(
        tmp_path,
        f"basic_auth_users:\n  prometheus: {bcrypt_hash(PASSWORD)}\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    exporter = exporter_for(
        {"ref": probe_target(reference_target(ref_target, "ref"))}, web=load_web_config(path)
    )
    with serving_url(exporter) as url:
        assert url.startswith("http://")
        paths = ["/metrics", "/probe?target=ref&flow=session", "/-/healthy", "/-/ready", "/", "/nowhere"]
        for endpoint in paths:
            for auth in (None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("prometheus", PASSWORD * 3)):
                refused = httpx.get(url + endpoint, auth=auth, timeout=10)
                assert refused.status_code == 401, (endpoint, auth, refused.status_code)
                assert refused.headers["WWW-Authenticate"] == "Basic"
                assert refused.headers["X-Content-Type-Options"] == "nosniff"
        broken = httpx.get(f"{url}/metrics", headers={"Authorization": "Basic !!notbase64"}, timeout=10)
        assert broken.status_code == 401
        with httpx.Client(auth=("prometheus", PASSWORD), timeout=10) as client:
            metrics = client.get(f"{url}/metrics")
            assert metrics.status_code == 200 and "ksentinel_probe_" in metrics.text
            assert metrics.headers["X-Content-Type-Options"] == "nosniff"
            assert client.get(f"{url}/-/healthy").text == "Healthy\n"
            probe = client.get(f"{url}/probe", params={"target": "ref", "flow": "session"})
            assert probe.status_code == 200 and value(probe.text, "probe_success") == 1.0
            started = time.monotonic()
            for _ in range(20):  # a verified password is cached: scrapes do not pay bcrypt each time
                assert client.get(f"{url}/-/healthy").status_code == 200
            assert time.monotonic() - started < 5
            assert client.get(f"{url}/nowhere").status_code == 404
    assert PASSWORD not in caplog.text and "prometheus:" not in caplog.text, "no credentials in logs"


def test_bearer_token_and_rate_limit(tmp_path: Path, ref_target: Reference) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = web_config(
        tmp_path, "ksentinel_bearer_token_file: token\nrate_limit:\n  interval: 10s\n  burst: 4\n"
    )
    exporter = exporter_for(
        {"ref": probe_target(reference_target(ref_target, "ref"))}, web=load_web_config(path)
    )
    with serving_url(exporter) as url:
        refused = httpx.get(f"{url}/metrics", timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10)
        assert wrong.status_code == 401
        ok = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert ok.status_code == 200 and "ksentinel_probe_" in ok.text
        # 3 requests so far, a burst of 4: the 5th within 10 s is over the limit
        assert httpx.get(f"{url}/-/healthy", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert httpx.get(f"{url}/-/healthy", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429


def test_tls_serves_https_and_refuses_plain_http(tmp_path: Path, ref_target: Reference) -> None:
    pki = make_pki(tmp_path)
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
        f"basic_auth_users:\n  prometheus: {bcrypt_hash(PASSWORD)}\n",
    )
    exporter = exporter_for(
        {"ref": probe_target(reference_target(ref_target, "ref"))}, web=load_web_config(path)
    )
    with serving_url(exporter) as url:
        assert url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        with httpx.Client(verify=trusted, timeout=10) as client:
            assert client.get(f"{url}/-/healthy").status_code == 401
            ok = client.get(f"{url}/metrics", auth=("prometheus", PASSWORD))
            assert ok.status_code == 200 and "ksentinel_probe_" in ok.text
            assert ok.http_version == "HTTP/1.1"
        with pytest.raises(httpx.TransportError):
            httpx.get(
                url.replace("https://", "http://") + "/-/healthy", auth=("prometheus", PASSWORD), timeout=5
            )
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"{url}/-/healthy", timeout=5)
        old = ssl.create_default_context(cafile=str(pki.ca))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):  # min_version: TLS13
            httpx.get(f"{url}/-/healthy", verify=old, timeout=5)
        assert httpx.get(f"{url}/-/healthy", verify=trusted, auth=("prometheus", PASSWORD)).status_code == 200


def test_client_certificates_and_a_renewed_server_certificate(tmp_path: Path, ref_target: Reference) -> None:
    pki = make_pki(tmp_path)
    path = web_config(
        tmp_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n",
    )
    exporter = exporter_for(
        {"ref": probe_target(reference_target(ref_target, "ref"))}, web=load_web_config(path)
    )
    with serving_url(exporter) as url:
        with_cert = ssl.create_default_context(cafile=str(pki.ca))
        with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert httpx.get(f"{url}/-/healthy", verify=with_cert, timeout=10).status_code == 200
        without = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/-/healthy", verify=without, timeout=5).raise_for_status()
        # a renewed certificate (same files, new content) is served from the next handshake on
        renewed = make_pki(tmp_path / "renewed", server_name="ksentinel probe renewed")
        pki.cert.write_bytes(renewed.cert.read_bytes())
        pki.key.write_bytes(renewed.key.read_bytes())
        time.sleep(1.1)
        ca_bundle = tmp_path / "both-cas.crt"
        ca_bundle.write_bytes(pki.ca.read_bytes() + renewed.ca.read_bytes())
        both = ssl.create_default_context(cafile=str(ca_bundle))
        both.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert httpx.get(f"{url}/-/healthy", verify=both, timeout=10).status_code == 200  # triggers the check

        def served_name() -> str:
            with (
                httpx.Client(verify=both, timeout=10) as client,
                client.stream("GET", f"{url}/-/healthy") as response,
            ):
                cert = response.extensions["network_stream"].get_extra_info("ssl_object").getpeercert()
            return dict(item[0] for item in cert["subject"])["commonName"]

        wait_until(lambda: served_name() == "ksentinel probe renewed", 5, "the renewed certificate")


# --- a real Prometheus through TLS and basic auth ---------------------------------------------------


@pytest.mark.slow
def test_prometheus_scrapes_through_tls_and_basic_auth(tmp_path: Path) -> None:
    binary = _prometheus()
    pki = make_pki(tmp_path)
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: {bcrypt_hash(PASSWORD, rounds=10)}\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    (tmp_path / "password").write_text(PASSWORD)
    with contextlib.ExitStack() as stack:
        serve = Child(
            [
                *probe_command(),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--web.config.file",
                str(path),
                "--on-demand-interval",
                "2",
            ],
            env=env,
            cwd=tmp_path,
        )
        stack.callback(serve.stop)
        exporter = serve.wait_for_line(LISTENING, 60).group(1)
        assert exporter.startswith("https://"), serve.output
        address = exporter.removeprefix("https://")
        port = _free_port()
        tls = f"tls_config:\n      ca_file: {pki.ca}"
        (tmp_path / "prometheus.yml").write_text(
            f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ksentinel
    scheme: https
    {tls}
    basic_auth:
      username: prometheus
      password_file: {tmp_path / "password"}
    static_configs:
      - targets: ["{address}"]
  - job_name: ksentinel_blackbox
    scrape_interval: 3s
    scrape_timeout: 3s
    scheme: https
    metrics_path: /probe
    params:
      target: [embedded]
      flow: [session]
    {tls}
    basic_auth:
      username: prometheus
      password: "{PASSWORD}"
    static_configs:
      - targets: ["{address}"]
  - job_name: wrong_password
    scheme: https
    {tls}
    basic_auth:
      username: prometheus
      password: not-the-password
    static_configs:
      - targets: ["{address}"]
  - job_name: plain_http
    static_configs:
      - targets: ["{address}"]
"""
        )
        prometheus = Child(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            env=env,
            cwd=tmp_path,
        )
        stack.callback(prometheus.stop)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5.0) as http:

            def ready() -> bool:
                assert prometheus.proc.poll() is None, prometheus.drain()
                with contextlib.suppress(httpx.HTTPError):
                    return http.get(f"{url}/-/ready").status_code == 200
                return False

            wait_until(ready, 30, "Prometheus to be ready")

            def one(promql: str) -> bool:
                return bool(query(http, url, promql))

            wait_until(lambda: one('up{job="ksentinel"} == 1'), 30, "up == 1 through TLS and basic auth")
            wait_until(lambda: one('up{job="wrong_password"} == 0'), 10, "the wrong password refused")
            wait_until(lambda: one('up{job="plain_http"} == 0'), 10, "plain HTTP refused")
            wait_until(
                lambda: one('probe_success{job="ksentinel_blackbox"} == 1'), 30, "/probe through TLS and auth"
            )
            wait_until(lambda: one('ksentinel_probe_runs_total{job="ksentinel"} > 0'), 60, "scheduled runs")
        assert serve.stop() == 0, serve.drain()
        assert PASSWORD not in serve.drain()


def test_a_changed_web_configuration_applies_and_a_broken_one_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def request(user: str, password: str) -> Request:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return Request("GET", "/metrics", {}, {"authorization": f"Basic {token}"})

    now = [0.0]
    path = web_config(tmp_path, f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    guard = WebGuard(load_web_config(path), clock=lambda: now[0])

    async def status(user: str, password: str) -> int:
        refused = await guard(request(user, password))
        return 200 if refused is None else refused.status

    async def scenario() -> None:
        assert await status("alice", "one") == 200
        path.write_text(f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
        assert await status("alice", "one") == 200, "checked at most once a second"
        now[0] += 1.5
        assert await status("alice", "one") == 401
        assert await status("bob", "two") == 200
        path.write_text("basic_auth_users:\n  carol: not-a-hash\n")
        now[0] += 1.5
        assert await status("bob", "two") == 200, "an invalid change keeps the previous configuration"

    asyncio.run(scenario())
    assert "web configuration not reloaded" in caplog.text and "not-a-hash" not in caplog.text

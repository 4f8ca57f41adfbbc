"""The container image: the Dockerfile as ``dockerfile-parse`` reads it, and its steps replayed.

No container engine runs here, so the image itself is never built. The fast tests read the
Dockerfile's structure: stages and pinned bases, the non-root user, the ports, the health check, the
entrypoint. The slow one does what the stages do, in a fresh virtual environment instead of an
image: build the wheel, install it with its dependencies, run ``ksentinel`` from there, copy the
suites out of the wheel as the runtime stage's ``ksentinel init`` does, start ``probe serve`` in them with the image's
environment (listening on loopback here), and run the HEALTHCHECK's own command against it: it
passes while the exporter serves and fails once it is gone.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

import ksentinel
from ksentinel.probe.command import serve as serve_command
from ksentinel.probe.config import DEFAULT_LISTEN, parse_listen

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
HEALTH_PATH = "/-/healthy"
LOCUST_PORTS = {5557, 8089}  # the master's port for workers, the web UI
SUITE = ("contracts", "load", "dashboards", "probes")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
VERSION_TAG = re.compile(r"\d+\.\d+(\.\d+)?([.-][\w.-]+)?")
EXPORTER_PORT = parse_listen(DEFAULT_LISTEN, "listen")[1]


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[dict[str, Any]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def last(self, instruction: str) -> str:
        found = self.values(instruction)
        assert found, f"stage {self.name or self.image}: no {instruction}"
        return found[-1]


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


@pytest.fixture(scope="module")
def stages(parser: DockerfileParser) -> list[Stage]:
    out: list[Stage] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = [w for w in instruction["value"].split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            out.append(Stage(words[0], name))
        elif out:
            out[-1].instructions.append(instruction)
    return out


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest)."""
    name, _, digest = reference.partition("@")
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # no tag; the colon was a registry's port
        return name, None, digest or None
    return repository, tag, digest or None


def exec_form(value: str) -> list[str]:
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), value
    return argv


def healthcheck(final: Stage) -> tuple[dict[str, str], list[str]]:
    """The final stage's HEALTHCHECK as (options, exec-form command)."""
    options_part, keyword, command = final.last("HEALTHCHECK").partition("CMD")
    assert keyword, "HEALTHCHECK NONE, or without CMD"
    options = {}
    for word in options_part.split():
        key, _, value = word.removeprefix("--").partition("=")
        options[key] = value
    return options, exec_form(command.strip())


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def copies(final: Stage) -> list[tuple[list[str], str]]:
    """The final stage's COPY instructions from the build context: (sources, destination)."""
    out = []
    for value in final.values("COPY"):
        words = value.split()
        if any(w.startswith("--from") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        out.append((paths[:-1], paths[-1]))
    return out


# --- the Dockerfile's structure ------------------------------------------------------------------------


def test_multi_stage_on_one_pinned_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    for stage in stages:
        name, tag, digest = split_image(stage.image)
        assert tag != "latest", stage.image
        assert (digest and DIGEST.fullmatch(digest)) or (tag and VERSION_TAG.fullmatch(tag)), (
            f"{stage.image}: pin the base by a version tag or a digest"
        )
        if tag is not None:
            assert VERSION_TAG.fullmatch(tag), f"{stage.image}: tag {tag!r} is not a version"
        assert name.endswith("python"), stage.image
        assert "slim" in (tag or ""), f"{stage.image}: a slim base"
    assert len({s.image for s in stages}) == 1, "every stage on the same pinned base"


def test_builder_builds_the_wheel_and_runtime_installs_only_wheels(stages: list[Stage], final: Stage) -> None:
    builder = stages[0]
    assert builder.name, "the builder stage is named, so the runtime stage can take from it"
    assert any("pip wheel" in run for run in builder.values("RUN")), builder.values("RUN")
    installs = [run for run in final.values("RUN") if "pip install" in run]
    assert len(installs) == 1, final.values("RUN")
    install = installs[0]
    assert f"from={builder.name}" in install, "the wheels come from the builder stage"
    assert "--no-index" in install, "the runtime stage installs the builder's wheels, nothing from an index"
    assert "ksentinel --version" in install, "the build fails when the command does not run"
    assert not any("pip wheel" in run or "apt-get" in run for run in final.values("RUN"))


def test_final_stage_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    user, _, group = final.last("USER").partition(":")
    assert user not in {"", "0", "root"}, final.last("USER")
    assert group not in {"0", "root"}, final.last("USER")
    assert user.isdigit(), "numeric, so Kubernetes' runAsNonRoot can check it"
    assert any("useradd" in run and f"--uid {user}" in run for run in final.values("RUN")), "the user exists"
    assert all(f"--chown={final.last('USER')}" in c for c in final.values("COPY") if "--from" not in c)


def test_entrypoint_command_and_labels(parser: DockerfileParser, final: Stage) -> None:
    assert exec_form(final.last("ENTRYPOINT")) == ["ksentinel"]
    assert exec_form(final.last("CMD")) == ["--help"]
    labels = parser.labels  # the final stage's
    for key in ("title", "description", "version", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key}"
    assert labels["org.opencontainers.image.title"] == "ksentinel"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_ports_and_listen_address(parser: DockerfileParser, final: Stage) -> None:
    exposed = {int(p.split("/")[0]) for value in final.values("EXPOSE") for p in value.split()}
    assert {EXPORTER_PORT, *LOCUST_PORTS} <= exposed, exposed
    listen = parser.envs.get("KSENTINEL_PROBE_LISTEN")  # the final stage's
    assert listen, "the exporter must listen beyond loopback in a container"
    host, port = parse_listen(listen, "KSENTINEL_PROBE_LISTEN")
    assert (host, port) == ("0.0.0.0", EXPORTER_PORT)
    assert {o.envvar for o in serve_command.params if o.name == "listen"} == {"KSENTINEL_PROBE_LISTEN"}


def init_steps(final: Stage) -> list[str]:
    """The final stage's ``ksentinel init DIR`` runs: the wheel's suites copied into the working directory."""
    return [run for run in final.values("RUN") if run.split()[:2] == ["ksentinel", "init"]]


def test_the_suites_come_from_the_wheel(stages: list[Stage], final: Stage) -> None:
    builder = stages[0]
    copied_to_builder = {p.rstrip("/").removeprefix("./") for s, d in copies(builder) for p in s}
    assert set(SUITE) <= copied_to_builder, "the builder builds the wheel with its suites (package data)"
    assert not copies(final), "the runtime stage takes nothing from the build context: the wheel has it all"
    workdir = final.last("WORKDIR")
    assert workdir == "/opt/ksentinel"
    (init,) = init_steps(final)
    assert init.split()[2:] == [workdir], "the suites are copied into the working directory"
    # run as the image's user (it owns the copies), after the install step
    order = [(i["instruction"], i["value"]) for i in final.instructions]
    assert order.index(("USER", final.last("USER"))) < order.index(("RUN", init))
    for path in ("load/locustfile.py", "load/profiles.toml", "probes/probes.toml", "contracts/pytest.ini"):
        assert (ROOT / path).is_file(), path


def test_healthcheck_asks_the_exporter(final: Stage) -> None:
    options, argv = healthcheck(final)
    assert {"interval", "timeout", "retries"} <= set(options), options
    assert seconds(options["timeout"]) < seconds(options["interval"])
    assert argv[:2] == ["python", "-c"], "the slim image has no curl: Python's standard library"
    snippet = argv[2]
    compile(snippet, "<HEALTHCHECK>", "exec")
    assert HEALTH_PATH in snippet
    assert "127.0.0.1" in snippet and "KSENTINEL_PROBE_LISTEN" in snippet


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "reports", "build", ".pytest_cache", ".ruff_cache", "**/__pycache__"} <= ignored
    assert not ignored & {"src", "pyproject.toml", "README.md", "LICENSE", *SUITE}


# --- the stages replayed in a fresh virtual environment ---------------------------------------------------


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_install_steps_and_health_check(parser: DockerfileParser, final: Stage, tmp_path: Path) -> None:
    started = time.monotonic()
    # builder: the wheel (pip's configuration, i.e. the machine's package index, provides hatchling)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(ROOT)],
        cwd=ROOT,
        timeout=180,
    )
    (wheel,) = wheels.glob("ksentinel-*.whl")
    # runtime: a virtual environment with the wheel and its dependencies, nothing from the repository
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, timeout=240)

    # the image's environment, with this venv as /opt/venv and loopback instead of 0.0.0.0
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({k: v for k, v in parser.envs.items() if k.startswith(("KSENTINEL_", "PYTHON"))})
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        KSENTINEL_PROBE_LISTEN=f"127.0.0.1:{port}",
        KSENTINEL_LOAD_METRICS_HOST="127.0.0.1",
    )
    # WORKDIR /opt/ksentinel, with the suites as the runtime stage's `ksentinel init` copies them
    workdir = tmp_path / "opt-ksentinel"
    workdir.mkdir()
    for init in init_steps(final):  # the RUN as written, with this folder for /opt/ksentinel
        argv = [str(bin_dir / "ksentinel"), *init.split()[1:]]
        _run(
            [str(workdir) if a == final.last("WORKDIR") else a for a in argv],
            env=env,
            cwd=workdir,
            timeout=60,
        )
    assert (workdir / "probes" / "probes.toml").is_file()

    location = _run(
        [str(python), "-c", "import ksentinel; print(ksentinel.__file__)"], env=env, cwd=workdir, timeout=60
    )
    assert Path(location.strip()).is_relative_to(venv), f"ksentinel imported from {location}"
    ksentinel_bin = shutil.which("ksentinel", path=env["PATH"])
    assert ksentinel_bin == str(bin_dir / "ksentinel")
    version = _run([ksentinel_bin, "--version"], env=env, cwd=workdir, timeout=60)
    assert ksentinel.__version__ in version
    assert "KSENTINEL_PROBE_LISTEN" in _run(
        [ksentinel_bin, "probe", "serve", "--help"], env=env, cwd=workdir, timeout=60
    )

    options, argv = healthcheck(final)
    check_timeout = seconds(options["timeout"]) * 3  # the image's timeout, with room for a busy CI machine
    argv = [shutil.which(argv[0], path=env["PATH"]) or argv[0], *argv[1:]]
    assert argv[0] == str(bin_dir / "python"), "the health check's python is the venv's (PATH)"

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=workdir, timeout=check_timeout
        )

    log_path = tmp_path / "probe.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen(
            [ksentinel_bin, "probe", "serve", "--config", "probes/probes.toml"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
        try:
            deadline = time.monotonic() + 60
            while f"listening on http://127.0.0.1:{port}" not in log_path.read_text():
                assert serve.poll() is None, f"probe serve exited {serve.returncode}: {log_path.read_text()}"
                assert time.monotonic() < deadline, f"probe serve did not listen: {log_path.read_text()}"
                time.sleep(0.2)
            # like Docker within the start period: the first passing check counts
            for _ in range(int(options.get("retries", "3")) + 2):
                result = check()
                if result.returncode == 0:
                    break
                time.sleep(0.5)
            assert result.returncode == 0, f"health check failed: {result.stdout}{result.stderr}"
            assert check().returncode == 0
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
            try:
                code = serve.wait(45)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait(10)
                raise
    assert code == 0, log_path.read_text()
    assert "ksentinel probe: stopped" in log_path.read_text()
    # nothing listens any more: the check fails with exit 1 (Docker's "unhealthy"; 2 is reserved)
    gone = check()
    assert gone.returncode == 1, f"{gone.returncode}: {gone.stderr}"
    assert time.monotonic() - started < 240

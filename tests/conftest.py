"""Shared fixtures: reference platforms over loopback HTTP with known test partners."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ksentinel.kaltura.redact import forget_secrets
from ksentinel.reference.platform import PlatformConfig
from ksentinel.reference.realism import Realism
from ksentinel.reference.server import RunningServer, run_in_thread


@dataclass(frozen=True)
class TestPartner:
    id: int
    admin_secret: str
    user_secret: str


@dataclass
class Reference:
    """A running reference platform and its partners."""

    url: str
    p1: TestPartner
    p2: TestPartner
    server: RunningServer
    data_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"KSENTINEL_REF_PARTNERS": partners_env(self.p1, self.p2)}


def make_partners() -> tuple[TestPartner, TestPartner]:
    return (
        TestPartner(101, secrets.token_hex(16), secrets.token_hex(16)),
        TestPartner(102, secrets.token_hex(16), secrets.token_hex(16)),
    )


def partners_env(*partners: TestPartner) -> str:
    return ",".join(f"{p.id}:{p.admin_secret}:{p.user_secret}" for p in partners)


@contextlib.contextmanager
def start_reference(
    tmp: Path,
    *,
    faults: tuple[str, ...] = (),
    ready_after: float = 0.2,
    max_chunk_bytes: int | None = None,
    realism: Realism | None = None,
) -> Iterator[Reference]:
    """A reference platform in a thread with fresh partners.

    Plain (``Realism.off()``) unless ``realism`` is given: protocol tests want immediate answers; tests
    that judge verdicts pass ``Realism()`` (or use the CLI, whose embedded platform is realistic).
    """
    p1, p2 = make_partners()
    config = PlatformConfig(
        data_dir=tmp, ready_after=ready_after, faults=faults, realism=realism or Realism.off()
    )
    if max_chunk_bytes is not None:
        config.max_chunk_bytes = max_chunk_bytes
    with run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}) as server:
        yield Reference(server.url, p1, p2, server, tmp)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """One clean reference platform shared by tests that only add their own objects."""
    with start_reference(tmp_path_factory.mktemp("reference"), max_chunk_bytes=4 * 1024 * 1024) as ref:
        yield ref


@pytest.fixture
def fresh_reference(tmp_path: Path) -> Iterator[Reference]:
    """A reference platform of one's own (empty store, empty cache)."""
    with start_reference(tmp_path / "ref") as ref:
        yield ref


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


@pytest.fixture(autouse=True)
def _isolate_redaction() -> Iterator[None]:
    yield
    forget_secrets()

"""The embedded reference platform as a target: what every command uses when no target is given.

This module (CLI layer) and the tests are the only places that import ``ksentinel.reference``.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ksentinel.config import Target
from ksentinel.kaltura.redact import register_secret

PRIMARY, PEER = 101, 102


@contextlib.contextmanager
def embedded_target(
    *, faults: tuple[str, ...] = (), ready_after: float = 0.5, data_dir: Path | None = None
) -> Iterator[Target]:
    """Start the reference platform on a free loopback port with fresh partners; stop it on exit."""
    from ksentinel.reference.platform import PlatformConfig
    from ksentinel.reference.server import run_in_thread

    secret = {name: secrets.token_hex(16) for name in ("a1", "u1", "a2", "u2")}
    for value in secret.values():
        register_secret(value)
    partners = f"{PRIMARY}:{secret['a1']}:{secret['u1']},{PEER}:{secret['a2']}:{secret['u2']}"
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ksentinel-ref-")))
        config = PlatformConfig(data_dir=data_dir, ready_after=ready_after, faults=faults)
        server = stack.enter_context(run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners}))
        yield Target.for_reference(server.url, PRIMARY, secret["a1"], secret["u1"], PEER, secret["a2"])


@contextlib.contextmanager
def open_target(target: Target | None, **embedded_options: object) -> Iterator[Target]:
    """``target`` itself, or (when None) a freshly started embedded platform."""
    if target is not None:
        yield target
        return
    with embedded_target(**embedded_options) as started:  # type: ignore[arg-type]
        yield started

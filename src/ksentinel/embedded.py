"""The embedded reference platform as a target: what every command uses when no target is given.

This module (CLI layer) and the tests are the only places that import ``ksentinel.reference``.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ksentinel.config import Config, Target
from ksentinel.kaltura.redact import register_secret

if TYPE_CHECKING:
    from ksentinel.reference.realism import ReferenceSettings

PRIMARY, PEER = 101, 102


@contextlib.contextmanager
def embedded_target(
    *,
    faults: tuple[str, ...] = (),
    settings: ReferenceSettings | None = None,
    data_dir: Path | None = None,
) -> Iterator[Target]:
    """Start the reference platform on a free loopback port with fresh partners; stop it on exit.

    ``settings`` (the ``[reference]`` section) default to the realistic platform: search index lag,
    asynchronous conversion, redirected downloads and the real server's quirks (docs/reference-platform.md).
    """
    from ksentinel.reference.platform import PlatformConfig
    from ksentinel.reference.realism import ReferenceSettings
    from ksentinel.reference.server import run_in_thread

    settings = settings or ReferenceSettings()

    secret = {name: secrets.token_hex(16) for name in ("a1", "u1", "a2", "u2")}
    for value in secret.values():
        register_secret(value)
    partners = f"{PRIMARY}:{secret['a1']}:{secret['u1']},{PEER}:{secret['a2']}:{secret['u2']}"
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ksentinel-ref-")))
        config = PlatformConfig(
            data_dir=data_dir, ready_after=settings.ready_after, faults=faults, realism=settings.realism
        )
        server = stack.enter_context(run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners}))
        yield Target.for_reference(server.url, PRIMARY, secret["a1"], secret["u1"], PEER, secret["a2"])


@contextlib.contextmanager
def open_target(
    target: Target | None, *, faults: tuple[str, ...] = (), config: Config | None = None
) -> Iterator[Target]:
    """``target`` itself, or (when None) a freshly started embedded platform set up by ``config``'s
    ``[reference]`` section (realistic by default)."""
    if target is not None:
        yield target
        return
    from ksentinel.reference.realism import reference_settings

    settings = reference_settings(config.reference if config is not None else None)
    with embedded_target(faults=faults, settings=settings) as started:
        yield started

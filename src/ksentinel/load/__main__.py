"""``python -m ksentinel.load [options]``: the ``ksentinel load`` command on its own."""

from __future__ import annotations

from ksentinel.kaltura.redact import install_log_redaction
from ksentinel.load.command import load_command

if __name__ == "__main__":  # pragma: no cover
    install_log_redaction()
    load_command(prog_name="ksentinel load", auto_envvar_prefix="KSENTINEL_LOAD")

"""``python -m ksentinel.probe serve|run ...``: the ``ksentinel probe`` group on its own."""

from __future__ import annotations

import logging

from ksentinel.kaltura.redact import install_log_redaction
from ksentinel.probe.command import probe_group

if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    probe_group(prog_name="ksentinel probe")

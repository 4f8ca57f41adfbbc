"""Start ``ksentinel serve`` as a child process and learn its URL (tests, demos, SIGKILL drills)."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from ksentinel.errors import TargetError

_URL_LINE = re.compile(r"listening on (http://\S+)")


class ReferenceProcess:
    """A reference platform in its own process; use as a context manager."""

    def __init__(
        self,
        data_dir: Path,
        *,
        faults: tuple[str, ...] = (),
        ready_after: float = 1.0,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 20.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.args = [
            sys.executable,
            "-m",
            "ksentinel.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ]
        self.args += ["--ready-after", str(ready_after), *extra_args]
        for fault in faults:
            self.args += ["--fault", fault]
        self.env = {**os.environ, **(env or {})}
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner: list[str] = []

    def start(self) -> ReferenceProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline:
                if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.banner.append(line.rstrip())
                match = _URL_LINE.search(line)
                if match:
                    self.url = match.group(1)
                    # keep reading the banner's next lines without blocking
                    return self
        finally:
            selector.close()
        output = " | ".join(self.banner[-3:])
        self.kill()
        raise TargetError(f"the reference platform did not start: {output or 'no output'}")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ReferenceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

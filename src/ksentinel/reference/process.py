"""Start ``ksentinel serve`` as a child process and learn its URL (tests, demos, SIGKILL drills)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

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
        self._pump: threading.Thread | None = None

    def start(self) -> ReferenceProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True)
        self._pump.start()
        deadline = time.monotonic() + self.start_timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.banner.append(line.rstrip())
            match = _URL_LINE.search(line)
            if match:
                self.url = match.group(1)
                return self
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
        if self._pump is not None:
            self._pump.join(timeout=5)

    def __enter__(self) -> ReferenceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._pump is not None:
            self._pump.join(timeout=5)  # the pump owns the stream and closes it at EOF


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    """Forward the child's output line by line (and keep draining it so it never blocks)."""
    if stream is None:
        lines.put(None)
        return
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    finally:
        stream.close()
        lines.put(None)

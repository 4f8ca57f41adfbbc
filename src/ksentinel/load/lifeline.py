"""The lifeline between ``ksentinel load`` and its Locust processes: no load outlives the command.

However ``ksentinel load`` ends (Ctrl-C, SIGTERM, an exception, SIGKILL, the OOM killer), the Locust
processes it started stop loading the target, clean up and exit. Two independent signals, both read
by the child:

* **Parent-death signal** (Linux): each child asks the kernel for SIGTERM when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, set by the child itself when the locustfile is imported, not in a
  ``preexec_fn``, which is unsafe in a process with threads). The kernel sends it when the *thread*
  that started the child ends: :func:`~ksentinel.load.runner.run_load` starts the children and waits
  for them in one thread, which therefore outlives them unless the whole process dies. A parent that
  died before the child armed it is caught by comparing ``os.getppid()`` with the parent's pid.
* **The pipe** (every POSIX system): the parent opens a pipe, hands the read end to each child
  (``pass_fds``) and keeps the write end, writing nothing. The read end turns readable (end of file)
  when no process holds the write end any more: the parent is gone. The child watches it (and the
  parent pid, once a second) in a greenlet (:func:`watch`).

Either way the child gets SIGTERM, which the load hooks turn into a graceful stop: users stopped
(their flows clean up), the run's tag swept, the summary written, exit. The parent passes both
through one variable, ``KSENTINEL_LOAD_LIFELINE=<parent pid>:<read fd>``; a Locust run started by
hand has none and is left alone.

This module is plain Python (the greenlet part imports gevent only inside :func:`watch`, which only a
Locust process calls).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ENV_LIFELINE = "KSENTINEL_LOAD_LIFELINE"
PR_SET_PDEATHSIG = 1
#: seconds between two looks at the parent pid (the pipe reports at once)
POLL = 1.0
#: after a parent-death signal was armed, the watch waits this long for it before sending its own
PDEATHSIG_GRACE = 1.0


# --- the parent's side ---------------------------------------------------------------------------


class Lifeline:
    """The parent's end: a pipe whose write end only this process holds, closed by :meth:`close`."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()  # both not inheritable: a child gets only pass_fds

    @property
    def env(self) -> dict[str, str]:
        return {ENV_LIFELINE: f"{os.getpid()}:{self.read_fd}"}

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.read_fd,)

    def close(self) -> None:
        """Cut the line (children still running take it as the parent's death and stop)."""
        for fd in (self.read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self._write_fd = -1

    def __enter__(self) -> Lifeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the child's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildLine:
    """What the child read from ``KSENTINEL_LOAD_LIFELINE``; ``armed``: the parent-death signal is set."""

    parent: int
    fd: int | None
    armed: bool

    def parent_alive(self) -> bool:
        return os.getppid() == self.parent

    def broken(self) -> bool:
        """True when the parent is gone (re-parented, or the pipe at end of file)."""
        if not self.parent_alive():
            return True
        if self.fd is None:
            return False
        import select

        try:
            readable, _, _ = select.select([self.fd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


def parse(value: str | None) -> tuple[int, int | None] | None:
    """``"<pid>:<fd>"`` (or ``"<pid>"``) -> (pid, fd); None for anything else."""
    if not value:
        return None
    pid_text, _, fd_text = value.strip().partition(":")
    try:
        pid = int(pid_text)
        fd = int(fd_text) if fd_text else None
    except ValueError:
        return None
    if pid <= 1 or (fd is not None and fd < 0):
        return None
    return pid, fd


def arm_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Linux: ask the kernel to send ``signum`` when the parent (thread) dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def attach(environ: Mapping[str, str] | None = None) -> ChildLine | None:
    """In a child started by ``ksentinel load``: arm the parent-death signal, check the parent lives.

    Returns None in a Locust process started any other way. Call it as early as possible (the
    locustfile's import); when the parent is already gone it raises SIGTERM at once.
    """
    env = os.environ if environ is None else environ
    parsed = parse(env.get(ENV_LIFELINE))
    if parsed is None:
        return None
    parent, fd = parsed
    if fd is not None:
        try:
            os.fstat(fd)
        except OSError:
            fd = None
    line = ChildLine(parent, fd, arm_parent_death_signal(signal.SIGTERM))
    if not line.parent_alive():  # died before the signal was armed: nothing else will tell us
        os.kill(os.getpid(), signal.SIGTERM)
    return line


def watch(line: ChildLine, on_broken: Callable[[], None], *, stopping: Callable[[], bool]) -> None:
    """Block (a greenlet) until the parent is gone, then call ``on_broken`` unless ``stopping()``.

    With the parent-death signal armed, the kernel's SIGTERM normally comes first (``stopping()``
    is then true); the watch acts only when it has not come within :data:`PDEATHSIG_GRACE`.
    """
    import gevent
    from gevent.socket import wait_read

    while True:
        if line.fd is not None:
            with contextlib.suppress(OSError):  # a timeout (socket.timeout) or a closed descriptor
                wait_read(line.fd, timeout=POLL)
        else:
            gevent.sleep(POLL)
        if line.broken():
            break
    deadline = time.monotonic() + (PDEATHSIG_GRACE if line.armed else 0.0)
    while time.monotonic() < deadline and not stopping():
        gevent.sleep(0.05)
    if not stopping():
        on_broken()


def silence_output() -> None:
    """The parent read the child's output; with it gone, writes would fail: send them nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)

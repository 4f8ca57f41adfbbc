"""The default report folder, ``reports/<time>/``, and how many of them are kept.

A command given no ``--report DIR`` writes into a new timestamped folder under ``reports/`` in the
working directory (:func:`new_run_folder`). Right after making it, the oldest timestamped folders
beyond ``[reports] keep`` (default 20; 0 = never prune) are removed (:func:`prune`). Only folders of
``reports/`` whose whole name is a timestamp as ksentinel writes it (``20250101-120000``) are
candidates: never a folder given with ``--report DIR``, never a file, a symbolic link or any other
name, and never the folder just made.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from ksentinel.config import DEFAULT_REPORTS_KEEP
from ksentinel.report.render import prepare_folder

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("reports")
STAMP_FORMAT = "%Y%m%d-%H%M%S"
STAMP_PATTERN = re.compile(r"\d{8}-\d{6}\Z")


def new_run_folder(
    option: str = "--report",
    *,
    keep: int = DEFAULT_REPORTS_KEEP,
    root: Path = DEFAULT_ROOT,
    now: float | None = None,
) -> Path:
    """Make ``root/<time>/`` (one-line ``ConfigError`` naming ``option`` if it cannot be made), then
    prune ``root`` down to ``keep`` timestamped folders; returns the new folder."""
    folder = root / time.strftime(STAMP_FORMAT, time.localtime(now))
    prepare_folder(folder, option)
    prune(root, keep, spare=folder)
    return folder


def prune(root: Path, keep: int, *, spare: Path | None = None) -> list[Path]:
    """Remove the oldest timestamped folders of ``root`` beyond the newest ``keep``; returns them.

    ``keep`` <= 0 removes nothing. ``spare`` (the folder of the run in progress) is never removed and
    counts among the kept. A folder that cannot be removed is logged and left.
    """
    if keep <= 0:
        return []
    try:
        entries = list(root.iterdir())
    except OSError as exc:
        log.warning("cannot list %s to prune old reports: %s", root, exc.strerror or exc)
        return []
    stamped = sorted(
        (entry for entry in entries if STAMP_PATTERN.match(entry.name) and _real_folder(entry)),
        key=lambda entry: entry.name,
        reverse=True,
    )
    spared = spare.absolute() if spare is not None else None
    kept = [entry for entry in stamped if entry.absolute() == spared]
    removed: list[Path] = []
    for entry in stamped:
        if entry.absolute() == spared:
            continue
        if len(kept) < keep:
            kept.append(entry)
            continue
        try:
            shutil.rmtree(entry)
        except OSError as exc:
            log.warning("cannot remove old report folder %s: %s", entry, exc.strerror or exc)
            continue
        removed.append(entry)
    if removed:
        log.info("removed %d old report folders from %s ([reports] keep = %d)", len(removed), root, keep)
    return removed


def _real_folder(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir()

"""Where the suites come from: the team's copy in the working directory first, else the shipped one.

The four suites (``contracts/``, ``load/``, ``dashboards/``, ``probes/``) are files a team edits, not
modules. They ship in the wheel as package data under ``ksentinel/bundled/<suite>``; in a checkout (an
editable install) they are the repository's top-level folders. ``ksentinel init DIR`` copies them out,
and from then on every command run in DIR uses that copy.

Order of search, per suite: the ``--suite`` folder when given (it must hold the suite's marker file),
``./<suite>`` when it holds the marker, the bundled copy, the checkout's folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ksentinel.errors import ConfigError

__all__ = ["SUITES", "FoundSuite", "Suite", "copy_suites", "find_suite", "shipped_suite"]

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "bundled"
_CHECKOUT = _PACKAGE.parents[1]  # src/ksentinel -> the repository root (editable installs)
# what a copy never takes from the shipped folder: build output and bytecode
_NOT_COPIED = shutil.ignore_patterns("build", "__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class Suite:
    name: str  # the folder name: contracts, load, dashboards, probes
    marker: str  # a glob that matches at least one file of a real suite folder
    what: str  # for messages

    def holds(self, folder: Path) -> bool:
        return folder.is_dir() and any(path.is_file() for path in folder.glob(self.marker))


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("contracts", "conftest.py", "contract suite"),
        Suite("load", "locustfile.py", "load suite"),
        Suite("dashboards", "*.dashboard.py", "dashboards suite"),
        Suite("probes", "probes.toml", "probe schedule"),
    )
}


@dataclass(frozen=True)
class FoundSuite:
    path: Path
    shipped: bool  # the copy inside the installed package (or the checkout): not the team's to write into


def shipped_suite(name: str) -> Path | None:
    """The suite as installed with ksentinel: the wheel's package data, else the checkout's folder."""
    suite = SUITES[name]
    for folder in (_BUNDLED / name, _CHECKOUT / name):
        if suite.holds(folder):
            return folder
    return None


def find_suite(name: str, explicit: Path | None = None, *, cwd: Path | None = None) -> FoundSuite:
    """The folder of suite ``name``: ``explicit``, else ``<cwd>/<name>``, else the shipped copy."""
    suite = SUITES[name]
    if explicit is not None:
        if suite.holds(explicit):
            return FoundSuite(explicit.resolve(), shipped=False)
        raise ConfigError(f"--suite {explicit}: not a {suite.what} (no {suite.marker} in it)")
    local = (cwd or Path.cwd()) / name
    if suite.holds(local):
        return FoundSuite(local.resolve(), shipped=False)
    shipped = shipped_suite(name)
    if shipped is not None:
        return FoundSuite(shipped, shipped=True)
    raise ConfigError(
        f"no {suite.what} found (no {suite.marker} in {local} nor in the installed package); "
        "reinstall ksentinel or use --suite DIR"
    )


def copy_suites(
    destination: Path, names: tuple[str, ...] = tuple(SUITES), *, force: bool = False
) -> list[Path]:
    """Copy the shipped suites into ``destination/<name>``; an existing folder is kept unless ``force``.

    Returns the folders written. Refuses (one line) rather than mixing a shipped copy into a team's
    edited folder: with ``force`` the old folder is replaced as a whole.
    """
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise ConfigError(f"unknown suite {unknown[0]!r} (choose from {', '.join(SUITES)})")
    if destination.exists() and not destination.is_dir():
        raise ConfigError(f"{destination}: exists and is not a folder")
    existing = [destination / name for name in names if (destination / name).exists()]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} exists: ksentinel init does not overwrite a suite (--force replaces it)"
        )
    written: list[Path] = []
    for name in names:
        source = shipped_suite(name)
        if source is None:
            raise ConfigError(f"the installed ksentinel has no {SUITES[name].what}; reinstall it")
        target = destination / name
        try:
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            shutil.copytree(source, target, ignore=_NOT_COPIED)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from exc
        written.append(target)
    return written

"""The ignore file of ``ksentinel schema diff``: changes a team has accepted, each with its reason.

TOML (``[[ignore]]`` tables) or YAML (an ``ignore:`` list), by the file's suffix; every entry has a
``rule`` (a rule id), a ``place`` (a glob, matched case-insensitively, as Kaltura names are) and a
mandatory ``reason``. A matched change stays in the output, marked ignored; an entry that matches
no change becomes a ``stale-ignore`` row (a warning), so the file does not outlive its changes.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.schema.diff import RULES, Change

KEYS = ("rule", "place", "reason")
MAX_IGNORE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class IgnoreEntry:
    rule: str
    place: str
    reason: str
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(fnmatch.translate(self.place.lower())))

    def matches(self, change: Change) -> bool:
        return change.rule == self.rule and self._pattern.match(change.place.lower()) is not None


def load_ignores(path: Path) -> tuple[IgnoreEntry, ...]:
    """The entries of an ignore file; raises :class:`ConfigError` with one line naming the entry."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"--ignore-file {path}: give a .toml, .yaml or .yml file")
    if not path.is_file():
        raise ConfigError(f"--ignore-file {path}: no such file")
    try:
        size = path.stat().st_size
        if size > MAX_IGNORE_BYTES:
            raise ConfigError(f"--ignore-file {path}: {size} bytes is over the limit of {MAX_IGNORE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--ignore-file {path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    data = _parse(path, text, suffix)
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an 'ignore' list of entries (rule, place, reason)")
    unknown = [key for key in data if key != "ignore"]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (only 'ignore' entries: rule, place, reason)")
    entries = data.get("ignore", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'ignore' must be a list of entries (rule, place, reason)")
    return tuple(_entry(path, index, item) for index, item in enumerate(entries, start=1))


def apply_ignores(changes: Iterable[Change], entries: Sequence[IgnoreEntry]) -> list[Change]:
    """The changes with the matched ones marked ignored, and one ``stale-ignore`` row per entry that
    matched none."""
    used = [False] * len(entries)
    out: list[Change] = []
    for change in changes:
        for index, entry in enumerate(entries):
            if entry.matches(change):
                used[index] = True
                change = replace(change, ignored=True, reason=entry.reason)
                break
        out.append(change)
    for entry, was_used in zip(entries, used, strict=True):
        if not was_used:
            out.append(
                Change(
                    "stale-ignore",
                    entry.place,
                    old=entry.rule,
                    new="matches no change",
                    reason=entry.reason,
                    subject=("ignore",),
                )
            )
    return sorted(out, key=Change.sort_key)


def _parse(path: Path, text: str, suffix: str) -> Any:
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({detail[:200]})") from None


def _entry(path: Path, index: int, item: Any) -> IgnoreEntry:
    where = f"{path}: ignore entry {index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a table with rule, place and reason")
    for key in item:
        if key not in KEYS:
            hint = did_you_mean(str(key), KEYS, otherwise=f" (known keys: {', '.join(KEYS)})")
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key in KEYS:
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            why = " (say why the change is accepted)" if key == "reason" else ""
            raise ConfigError(f"{where}: {key} is missing or empty{why}")
    rule = item["rule"].strip()
    if rule not in RULES or rule == "stale-ignore":
        choices = [r for r in RULES if r != "stale-ignore"]
        hint = did_you_mean(rule, choices, otherwise=" (see docs/schema-diff.md for the rule ids)")
        raise ConfigError(f"{where}: unknown rule {rule!r}{hint}")
    return IgnoreEntry(rule, item["place"].strip(), " ".join(item["reason"].split()))

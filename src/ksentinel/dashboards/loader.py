"""Loading ``dashboards/*.dashboard.py`` by path (the suite folder is never imported as a package).

Each file assigns a grafanalib ``Dashboard`` to the name ``dashboard`` (grafanalib's own convention).
Its uid is derived from the file name: ``overview.dashboard.py`` -> ``ksentinel-overview``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksentinel.errors import ConfigError

__all__ = [
    "SUFFIX",
    "BuiltDashboard",
    "dashboard_files",
    "dashboard_uid",
    "load_dashboard",
    "load_dashboards",
]

SUFFIX = ".dashboard.py"
UID_PREFIX = "ksentinel-"


@dataclass(frozen=True)
class BuiltDashboard:
    path: Path
    uid: str
    model: dict[str, Any]  # the dashboard JSON model

    @property
    def title(self) -> str:
        return str(self.model.get("title", ""))

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def dashboard_files(suite: Path) -> list[Path]:
    """The dashboard files of a suite folder, sorted by name."""
    if not suite.is_dir():
        raise ConfigError(f"{suite}: no such dashboards folder (--suite DIR)")
    return sorted(p for p in suite.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def dashboard_uid(path: Path) -> str:
    stem = path.name[: -len(SUFFIX)]
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not slug:
        raise ConfigError(f"{path}: cannot derive a dashboard uid from the file name")
    uid = UID_PREFIX + slug
    if len(uid) > 40:
        raise ConfigError(f"{path}: the uid {uid!r} is longer than Grafana's 40 characters; shorten the name")
    return uid


class _GrafanalibEncoder(json.JSONEncoder):
    """grafanalib objects as JSON through their public ``to_json_data()`` (what grafanalib's own,
    private ``_gen.DashboardEncoder`` does)."""

    def default(self, o: Any) -> Any:
        to_json_data = getattr(o, "to_json_data", None)
        if callable(to_json_data):
            return to_json_data()
        return super().default(o)


def load_dashboard(path: Path) -> BuiltDashboard:
    """Run one dashboard file and return its JSON model (uid set from the file name)."""
    uid = dashboard_uid(path)
    module_name = f"_ksentinel_dashboard_{uid.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot load")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: {exc.__class__.__name__}: {exc}") from exc
    finally:
        sys.modules.pop(module_name, None)
    dashboard = getattr(module, "dashboard", None)
    if dashboard is None or not hasattr(dashboard, "to_json_data"):
        raise ConfigError(f"{path}: assigns no grafanalib Dashboard to the name 'dashboard'")
    # a JSON round trip turns grafanalib objects into plain data
    model = json.loads(json.dumps(dashboard.to_json_data(), cls=_GrafanalibEncoder, sort_keys=True))
    model["uid"] = uid
    model["id"] = None
    return BuiltDashboard(path=path, uid=uid, model=model)


def load_dashboards(suite: Path) -> list[BuiltDashboard]:
    built = [load_dashboard(path) for path in dashboard_files(suite)]
    titles: dict[str, Path] = {}
    for item in built:
        if item.title in titles:
            raise ConfigError(
                f"{item.path}: title {item.title!r} is already used by {titles[item.title].name}"
            )
        titles[item.title] = item.path
    return built

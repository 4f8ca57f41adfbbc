"""Building blocks for ``dashboards/*.dashboard.py`` (grafanalib), so every dashboard looks alike.

A dashboard file assigns a grafanalib ``Dashboard`` to ``dashboard``; the engine sets its uid from the
file name. The helpers here fix what the lint checks: a datasource variable every query uses, a unit
and a title on every panel, and a layout that needs no hand-placed ``gridPos``::

    from ksentinel.dashboards.kit import Layout, datasource_variable, label_variable, timeseries

    layout = Layout()
    layout.row("Success")
    layout.add(timeseries("Success per flow", ["ksentinel_probe_success"], unit="percentunit"), width=12)
    dashboard = make_dashboard("Kaltura API overview", layout, [datasource_variable(), ...])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafanalib.core import (
    Dashboard,
    GridPos,
    Repeat,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

__all__ = [
    "DATASOURCE",
    "Layout",
    "Query",
    "datasource_variable",
    "label_variable",
    "make_dashboard",
    "stat",
    "timeseries",
]

#: every panel and query reads from the dashboard's ``datasource`` variable
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["ksentinel", "kaltura"]
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Query = str | tuple[str, str]  # an expression, or (expression, legend)


class _AllSelected(Template):  # type: ignore[misc]
    """A variable with "All" selected, in Grafana's own encoding, through grafanalib's public
    ``to_json_data()`` (its ``current`` comes from a private field otherwise)."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
        return data


def datasource_variable() -> Template:
    return Template(
        name="datasource",
        label="Data source",
        type="datasource",
        query="prometheus",
        default="",
        hide=0,
    )


def label_variable(
    name: str, query: str, *, label: str = "", multi: bool = True, regex: str = "", include_all: bool = True
) -> Template:
    """A query variable over ``label_values(...)`` of the datasource variable."""
    kind = _AllSelected if include_all else Template
    variable = kind(
        name=name,
        label=label or name.capitalize(),
        query=query,
        dataSource=DATASOURCE,
        multi=multi,
        includeAll=include_all,
        allValue=".*" if include_all else None,
        regex=regex,
        refresh=2,
        sort=1,
        default="All" if include_all else "",
    )
    return variable


def _targets(queries: Sequence[Query], *, instant: bool = False) -> list[Target]:
    targets = []
    for index, query in enumerate(queries):
        expr, legend = (query, "") if isinstance(query, str) else query
        targets.append(
            Target(
                expr=expr,
                legendFormat=legend,
                refId=_REF_IDS[index],
                datasource=DATASOURCE,
                instant=instant,
            )
        )
    return targets


def timeseries(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str,
    description: str = "",
    stacked: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> TimeSeries:
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        valueMin=minimum,
        valueMax=maximum,
        stacking={"mode": "normal" if stacked else "none", "group": "A"},
        legendDisplayMode="table",
        legendPlacement="right",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
    )


def stat(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str,
    description: str = "",
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    mappings: Sequence[dict[str, Any]] = (),
    decimals: int | None = None,
) -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=True),
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="none",
        colorMode="background",
        textMode="value_and_name",
        decimals=decimals,
        mappings=list(mappings),
        thresholds=[{"color": color, "value": value} for value, color in thresholds],
    )


class Layout:
    """Places panels left to right, wrapping at 24 columns; :meth:`row` starts a new row."""

    def __init__(self) -> None:
        self.panels: list[Any] = []
        self.x = 0
        self.y = 0
        self.height = 0

    def row(self, title: str, *, repeat: str | None = None) -> None:
        self._newline()
        self.panels.append(
            RowPanel(
                title=title,
                gridPos=GridPos(h=1, w=24, x=0, y=self.y),
                repeat=Repeat(direction="h", variable=repeat) if repeat else Repeat(),
            )
        )
        self.y += 1

    def add(self, panel: Any, *, width: int = 12, height: int = 8) -> None:
        if self.x + width > 24:
            self._newline()
        panel.gridPos = GridPos(h=height, w=width, x=self.x, y=self.y)
        self.panels.append(panel)
        self.x += width
        self.height = max(self.height, height)

    def _newline(self) -> None:
        if self.x:
            self.y += self.height
        self.x = 0
        self.height = 0


def make_dashboard(
    title: str, layout: Layout, variables: Sequence[Template], *, description: str = "", refresh: str = "30s"
) -> Dashboard:
    """The dashboard; the engine sets ``uid`` from the file name when it builds."""
    return Dashboard(
        title=title,
        description=description,
        tags=list(TAGS),
        panels=layout.panels,
        templating=Templating(list=list(variables)),
        time=Time("now-6h", "now"),
        refresh=refresh,
        timezone="browser",
        editable=False,
        graphTooltip=1,
        # the dashboards declare schemaVersion 12 (grafanalib's); Grafana's version-14 migration sets
        # graphTooltip from sharedCrosshair, so without it the shared crosshair is switched off on load
        sharedCrosshair=True,
    ).auto_panel_ids()

"""Grafana's side: alert rules as Grafana-managed rules, and the provisioning files.

A Prometheus alert fires for every series its expression returns. The Grafana-managed version of
the same alert has three queries: ``A`` the (self-contained) expression, instant; ``B`` reduces each
series to its last value; ``C`` is the condition, ``is_number($B)``: non-zero (firing) for every series
``A`` returned, whatever its value (``KalturaFlowFailing`` returns 0s). No data means "OK", exactly
as an empty Prometheus result means no alert.

Two encodings of the same rule: the file-provisioning one (``apiVersion: 1``, ``groups[].rules[]``,
:func:`alerting_provisioning`) and the HTTP provisioning API one (``folderUID``, ``ruleGroup``,
``orgID`` on each rule, :func:`api_rule`).
"""

from __future__ import annotations

import re
from typing import Any

from ksentinel.dashboards.rules import Rule, RuleGroup
from ksentinel.dashboards.settings import DashboardSettings, format_duration
from ksentinel.slo import parse_duration

__all__ = [
    "ORG_ID",
    "alert_data",
    "alerting_provisioning",
    "api_rule",
    "dashboards_provisioning",
    "datasource_provisioning",
]

ORG_ID = 1
EXPRESSION_UID = "__expr__"
MIN_RANGE = 600
_RANGE = re.compile(r"\[\s*(\d+(?:\.\d+)?[smhdw](?:\d+(?:\.\d+)?[smhdw])*)\s*(?::[^\]]*)?\]")


def query_range(expr: str) -> int:
    """Seconds of data the expression reads (its longest range selector), at least ten minutes."""
    longest = max((parse_duration(m.group(1)) for m in _RANGE.finditer(expr)), default=0.0)
    return int(max(MIN_RANGE, longest))


def alert_data(rule: Rule, settings: DashboardSettings) -> list[dict[str, Any]]:
    expression = {"type": EXPRESSION_UID, "uid": EXPRESSION_UID}
    return [
        {
            "refId": "A",
            "relativeTimeRange": {"from": query_range(rule.grafana_expr), "to": 0},
            "datasourceUid": settings.datasource_uid,
            "model": {
                "refId": "A",
                "expr": rule.grafana_expr,
                "instant": True,
                "range": False,
                "editorMode": "code",
                "legendFormat": "__auto",
                "intervalMs": 1000,
                "maxDataPoints": 43200,
                "datasource": {"type": "prometheus", "uid": settings.datasource_uid},
            },
        },
        {
            "refId": "B",
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": EXPRESSION_UID,
            "model": {
                "refId": "B",
                "type": "reduce",
                "expression": "A",
                "reducer": "last",
                "settings": {"mode": "dropNN"},
                "datasource": expression,
            },
        },
        {
            "refId": "C",
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": EXPRESSION_UID,
            "model": {
                "refId": "C",
                "type": "math",
                "expression": "is_number($B)",
                "datasource": expression,
            },
        },
    ]


def _rule(rule: Rule, settings: DashboardSettings) -> dict[str, Any]:
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": alert_data(rule, settings),
        "noDataState": "OK",
        "execErrState": "Error",
        "for": format_duration(rule.for_seconds),
        "annotations": dict(rule.grafana_annotations),
        "labels": dict(rule.labels),
        "isPaused": False,
    }


def alerting_provisioning(groups: list[RuleGroup], settings: DashboardSettings) -> dict[str, Any]:
    """Grafana's alerting file-provisioning document for every alert (recording rules are inlined)."""
    out = []
    for group in groups:
        rules = [_rule(rule, settings) for rule in group.rules if rule.alert]
        if rules:
            out.append(
                {
                    "orgId": ORG_ID,
                    "name": group.name,
                    "folder": settings.folder,
                    "interval": format_duration(group.interval),
                    "rules": rules,
                }
            )
    return {"apiVersion": 1, "groups": out}


def api_rule(rule: Rule, group: RuleGroup, settings: DashboardSettings) -> dict[str, Any]:
    """The body of ``POST /api/v1/provisioning/alert-rules`` (and of the ``PUT`` by uid)."""
    body = _rule(rule, settings)
    body.update({"folderUID": settings.folder, "ruleGroup": group.name, "orgID": ORG_ID})
    return body


def datasource_provisioning(settings: DashboardSettings) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": settings.datasource_name,
                "uid": settings.datasource_uid,
                "type": "prometheus",
                "access": "proxy",
                "url": settings.prometheus_url,
                "orgId": ORG_ID,
                "isDefault": False,
                "editable": False,
                "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
            }
        ],
    }


def dashboards_provisioning(settings: DashboardSettings) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "ksentinel",
                "orgId": ORG_ID,
                "folder": settings.folder,
                "folderUid": settings.folder,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": settings.dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }

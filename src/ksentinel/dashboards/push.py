"""``ksentinel dashboards push``: upload the built dashboards and alert rules through Grafana's HTTP API.

Idempotent: pushing twice leaves Grafana as pushing once.

1. ``GET /api/datasources/uid/<datasource_uid>``: the datasource the alerts query must exist;
2. ``GET /api/folders/<folder>``, ``POST /api/folders`` when it is missing;
3. each dashboard: ``POST /api/dashboards/db`` with ``overwrite: true`` (same uid, same dashboard);
4. each alert rule: ``GET /api/v1/provisioning/alert-rules/<uid>``, then ``PUT`` that path when it
   exists, else ``POST /api/v1/provisioning/alert-rules``;
5. each rule group: ``GET /api/v1/provisioning/folder/<folder>/rule-groups/<group>``, and a ``PUT`` of
   it when its interval differs or it holds rules ksentinel no longer generates (they are dropped).

The token (a Grafana service account token) comes from ``KSENTINEL_GRAFANA_TOKEN`` and is sent as
``Authorization: Bearer ...``. Every failure is one line: method, path, status and Grafana's message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ksentinel.dashboards.build import Build
from ksentinel.dashboards.grafana import api_rule
from ksentinel.errors import ConfigError, KsentinelError, TargetError
from ksentinel.kaltura.redact import register_secret

__all__ = ["ENV_TOKEN", "PushError", "PushResult", "push"]

ENV_TOKEN = "KSENTINEL_GRAFANA_TOKEN"
DEFAULT_TIMEOUT = 30.0


class PushError(KsentinelError):
    """Grafana refused a request."""


@dataclass
class PushResult:
    dashboards: int = 0
    folder_created: bool = False
    rules_created: list[str] = field(default_factory=list)
    rules_updated: list[str] = field(default_factory=list)
    rules_dropped: list[str] = field(default_factory=list)
    groups_updated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{self.dashboards} dashboards",
            f"{len(self.rules_created)} alert rules created",
            f"{len(self.rules_updated)} updated",
        ]
        if self.rules_dropped:
            parts.append(f"{len(self.rules_dropped)} dropped")
        if self.folder_created:
            parts.append("folder created")
        return ", ".join(parts)


def grafana_token(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    token = (env.get(ENV_TOKEN) or "").strip()
    if not token:
        raise ConfigError(f"set {ENV_TOKEN} to a Grafana service account token (Editor role or above)")
    register_secret(token)
    return token


def push(
    result: Build,
    grafana_url: str,
    token: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    output: Callable[[str], None] = lambda _line: None,
) -> PushResult:
    parts = urlsplit(grafana_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--grafana-url {grafana_url!r}: expected http(s)://host[:port][/path]")
    with httpx.Client(
        base_url=grafana_url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
    ) as client:
        return _Pusher(client, result, output).run()


class _Pusher:
    def __init__(self, client: httpx.Client, result: Build, output: Callable[[str], None]) -> None:
        self.client = client
        self.result = result
        self.settings = result.settings
        self.output = output
        self.outcome = PushResult()

    def run(self) -> PushResult:
        folder = self.settings.folder
        datasource = self.settings.datasource_uid
        if self.call("GET", f"/api/datasources/uid/{quote(datasource)}", missing_ok=True) is None:
            raise PushError(
                f"Grafana has no datasource with uid {datasource!r}: provision "
                "grafana/provisioning/datasources/ksentinel.yml of the build, or set [dashboards] datasource_uid"
            )
        if self.call("GET", f"/api/folders/{quote(folder)}", missing_ok=True) is None:
            self.call("POST", "/api/folders", {"uid": folder, "title": folder})
            self.outcome.folder_created = True
        for item in self.result.dashboards:
            self.call(
                "POST",
                "/api/dashboards/db",
                {
                    "dashboard": {**item.model, "id": None},
                    "folderUid": folder,
                    "overwrite": True,
                    "message": "ksentinel dashboards push",
                },
            )
            self.outcome.dashboards += 1
            self.output(f"dashboard {item.uid}: {item.title}")
        for group in self.result.groups:
            alerts = [rule for rule in group.rules if rule.alert]
            if not alerts:
                continue
            for rule in alerts:
                body = api_rule(rule, group, self.settings)
                path = f"/api/v1/provisioning/alert-rules/{quote(rule.uid)}"
                if self.call("GET", path, missing_ok=True) is None:
                    self.call("POST", "/api/v1/provisioning/alert-rules", body)
                    self.outcome.rules_created.append(rule.uid)
                else:
                    self.call("PUT", path, body)
                    self.outcome.rules_updated.append(rule.uid)
            self._fix_group(group.name, group.interval, {rule.uid for rule in alerts})
        return self.outcome

    def _fix_group(self, name: str, interval: float, uids: set[str]) -> None:
        folder = self.settings.folder
        path = f"/api/v1/provisioning/folder/{quote(folder)}/rule-groups/{quote(name, safe='')}"
        current = self.call("GET", path, missing_ok=True)
        if not isinstance(current, dict):
            return
        rules = current.get("rules") or []
        kept = [rule for rule in rules if rule.get("uid") in uids]
        dropped = [str(rule.get("uid")) for rule in rules if rule.get("uid") not in uids]
        if current.get("interval") == int(interval) and not dropped:
            return
        body = {"title": name, "folderUid": folder, "interval": int(interval), "rules": kept}
        self.call("PUT", path, body)
        self.outcome.rules_dropped += dropped
        self.outcome.groups_updated.append(name)

    def call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise TargetError(f"Grafana at {self.client.base_url}: {method} {path} timed out") from None
        except httpx.HTTPError as exc:
            raise TargetError(f"cannot reach Grafana at {self.client.base_url}: {exc}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400 or 300 <= response.status_code < 400:
            raise PushError(f"Grafana {method} {path}: HTTP {response.status_code}: {_message(response)}")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise PushError(f"Grafana {method} {path}: the answer is not JSON") from None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:200]
    return str(data)[:200]

"""The traffic section of a run report: what ``check-traffic`` concluded about a HAR file."""

from __future__ import annotations

from typing import Any

from ksentinel.traffic.outcome import TrafficOutcome

MAX_ROWS = 2000


def traffic_section(outcome: TrafficOutcome) -> dict[str, Any]:
    """A plain, JSON-ready dict (redacted): counts, the failing and advisory exchanges with their
    request/response excerpts, the not-judged reasons and, bounded, every other exchange."""
    data = outcome.to_dict()
    exchanges = data.pop("exchanges")
    order = {"failed": 0, "advisory": 1, "not_judged": 2, "passed": 3}
    exchanges.sort(key=lambda e: (order.get(e["outcome"], 9), e["index"]))
    for exchange in exchanges:
        exchange["name"] = f"#{exchange['index']} {exchange['method']} {exchange['path']}"
        if exchange["outcome"] not in ("failed", "advisory"):
            exchange["request"] = exchange["response"] = None
    data["attention"] = [e for e in exchanges if e["outcome"] in ("failed", "advisory")]
    others = [e for e in exchanges if e["outcome"] not in ("failed", "advisory")]
    data["others"] = others[:MAX_ROWS]
    data["others_left_out"] = max(0, len(others) - MAX_ROWS)
    return data

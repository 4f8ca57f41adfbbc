"""``did_you_mean``: the one "unknown ...; did you mean" hint every config reader uses."""

from __future__ import annotations

import pytest

from ksentinel.config.model import TargetConfig
from ksentinel.config.values import Invalid, as_environment, did_you_mean, unknown_target


@pytest.mark.parametrize(
    ("name", "known", "kwargs", "expected"),
    [
        ("intervall", ("interval", "targets"), {}, "; did you mean 'interval'?"),
        ("uplaod", ["browse", "upload"], {}, "; did you mean 'upload'?"),
        # a mapping gives its keys; a generator is read once
        ("stagin", {"staging": 1, "prod": 2}, {}, "; did you mean 'staging'?"),
        ("reson", (k for k in ("rule", "place", "reason")), {}, "; did you mean 'reason'?"),
        # nothing close: the known names in their order, or the caller's own fallback
        ("zzz", ("b", "a"), {}, " (known: b, a)"),
        ("zzz", ("b", "a"), {"otherwise": "; known flows: a, b"}, "; known flows: a, b"),
        ("zzz", ("b", "a"), {"otherwise": ""}, ""),
        ("zzz", (), {}, " (known: )"),
        # the cutoff decides what is close
        ("browse.lst", ("browse.list",), {"cutoff": 0.8}, "; did you mean 'browse.list'?"),
        ("brwse", ("browse.list",), {"cutoff": 0.8, "otherwise": ""}, ""),
        ("stage", ("staging",), {"cutoff": 0.5}, "; did you mean 'staging'?"),
    ],
)
def test_did_you_mean(name: str, known: object, kwargs: dict[str, object], expected: str) -> None:
    assert did_you_mean(name, known, **kwargs) == expected  # type: ignore[arg-type]


def test_did_you_mean_picks_the_closest_name() -> None:
    assert (
        did_you_mean("error_ration", ("error_rate", "error_ratio", "p99")) == "; did you mean 'error_ratio'?"
    )


def test_unknown_target_uses_the_hint() -> None:
    targets = {
        name: TargetConfig(name=name, url="https://x.example", partner_id=1) for name in ("prod", "staging")
    }
    assert unknown_target("stagng", targets) == "unknown target 'stagng'; did you mean 'staging'?"
    assert unknown_target("zzz", targets) == "unknown target 'zzz' (known targets: prod, staging)"
    assert unknown_target("zzz", {}) == "unknown target 'zzz' (known targets: none)"


def test_as_environment_uses_the_hint() -> None:
    with pytest.raises(
        Invalid, match=r"^env: expected one of .*, got \"prodution\"; did you mean 'production'\?$"
    ):
        as_environment("prodution", "env")
    with pytest.raises(Invalid, match=r", got \"qqqq\"$"):
        as_environment("qqqq", "env")

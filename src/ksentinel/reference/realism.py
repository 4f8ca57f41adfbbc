"""How closely the reference platform imitates a real Kaltura server's behaviour that is not a fault.

A real Kaltura lists through a search index that lags behind writes, converts uploads
asynchronously (and fails to convert what is not media), redirects downloads to a CDN host, marks
some cache hits ``cached-with-extra-fields``, echoes a refused KS in ``INVALID_KS`` and lets a final
parallel chunk wait for the chunks before it. Every behaviour is on by default (``ksentinel serve``,
the embedded target of every command, the demo and the self-test) and each has a setting
(``[reference]`` in ksentinel.toml, a ``serve`` flag) so a unit test can turn it down.
docs/reference-platform.md grounds each one in kaltura/server's source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ksentinel.config.values import describe, did_you_mean
from ksentinel.errors import ConfigError


@dataclass(frozen=True)
class Realism:
    """The realistic behaviours and their sizes; :meth:`off` gives the plain, immediate platform.

    The conversion delay (PRECONVERT before READY) is ``PlatformConfig.ready_after`` (``--ready-after``).
    """

    #: seconds before list/count see a created, updated or deleted entry (get is immediate); 0 = at once
    index_lag: float = 1.0
    #: the lag varies by up to this share either way (0.5: 0.5 s to 1.5 s for a 1 s lag)
    index_lag_jitter: float = 0.5
    #: content a media sniffer does not recognise as playable media ends in ERROR_CONVERTING (-1)
    sniff_media: bool = True
    #: download URLs answer 302 to another origin (``localhost`` <-> ``127.0.0.1``) that serves the bytes
    download_redirect: bool = True
    #: some cache hits are marked ``cached-with-extra-fields`` instead of ``cached-dispatcher``
    cache_extra_fields: bool = True
    #: ``INVALID_KS`` for an unparsable or forged KS carries the KS itself (KSID), as the real server does
    echo_invalid_ks: bool = True
    #: seconds a final chunk (resume, resumeAt > 0) waits for the earlier chunks (upload_final_chunk_max_append_time)
    final_chunk_wait: float = 45.0

    @classmethod
    def off(cls, **overrides: Any) -> Realism:
        """The immediate platform: no lag, no conversion delay, no sniffing, no redirects, no quirks."""
        plain = cls(
            index_lag=0.0,
            index_lag_jitter=0.0,
            sniff_media=False,
            download_redirect=False,
            cache_extra_fields=False,
            echo_invalid_ks=False,
            final_chunk_wait=0.0,
        )
        return replace(plain, **overrides)

    def with_values(self, **overrides: Any) -> Realism:
        return replace(self, **overrides)


REALISM_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Realism))

# the bounds of each number: (lowest, highest) seconds or share
_NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "ready_after": (0.0, 3600.0),
    "index_lag": (0.0, 600.0),
    "index_lag_jitter": (0.0, 1.0),
    "final_chunk_wait": (0.0, 600.0),
}
SETTINGS_KEYS: tuple[str, ...] = ("realism", "ready_after", *REALISM_KEYS)
DEFAULT_READY_AFTER = 2.0


@dataclass(frozen=True)
class ReferenceSettings:
    """The ``[reference]`` section: the conversion delay and the realism of the embedded platform."""

    ready_after: float = DEFAULT_READY_AFTER
    realism: Realism = field(default_factory=Realism)

    def describe(self) -> str:
        """One line for banners: what is on, with its size."""
        r = self.realism
        parts = [
            f"index lag {r.index_lag:g}s ±{r.index_lag_jitter:.0%}" if r.index_lag > 0 else "no index lag",
            f"conversion {self.ready_after:g}s" + (", media sniffed" if r.sniff_media else ""),
            "downloads redirected" if r.download_redirect else "downloads direct",
            "cached-with-extra-fields hits" if r.cache_extra_fields else "cached-dispatcher hits only",
            "INVALID_KS echoes the KS" if r.echo_invalid_ks else "INVALID_KS masks the KS",
            f"final chunk waits {r.final_chunk_wait:g}s"
            if r.final_chunk_wait > 0
            else "final chunk never waits",
        ]
        return "; ".join(parts)


def reference_settings(table: Mapping[str, Any] | None, where: str = "reference") -> ReferenceSettings:
    """Validate a ``[reference]`` table; problems raise a one-line :class:`ConfigError`.

    ``realism = false`` starts from :meth:`Realism.off`; the other keys override single behaviours.
    """
    table = dict(table or {})
    for key in table:
        if key not in SETTINGS_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key{did_you_mean(key, SETTINGS_KEYS)}")
    realism = Realism()
    if "realism" in table:
        if not isinstance(table["realism"], bool):
            raise ConfigError(f"{where}.realism: expected true or false, got {describe(table['realism'])}")
        realism = Realism() if table["realism"] else Realism.off()
    overrides: dict[str, Any] = {}
    ready_after = DEFAULT_READY_AFTER
    for key, value in table.items():
        if key == "realism":
            continue
        if key in _NUMBER_BOUNDS:
            low, high = _NUMBER_BOUNDS[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ConfigError(
                    f"{where}.{key}: expected a number from {low:g} to {high:g}, got {describe(value)}"
                )
            if key == "ready_after":
                ready_after = float(value)
            else:
                overrides[key] = float(value)
        elif not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {describe(value)}")
        else:
            overrides[key] = value
    return ReferenceSettings(ready_after, replace(realism, **overrides))

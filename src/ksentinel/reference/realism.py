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

from dataclasses import dataclass, fields, replace
from typing import Any


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

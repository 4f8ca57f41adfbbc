"""The scrape's gzip cache and the pieces it caches: one valid gzip member, only new parts deflated."""

from __future__ import annotations

import gzip
import random
import zlib

from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from ksentinel.flows.core import StepResult
from ksentinel.probe.config import Pair
from ksentinel.probe.gzip_cache import GzipCache
from ksentinel.probe.metrics import PAGE_SERIES, ProbeMetrics
from ksentinel.probe.run import Outcome

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0"


def one_member(pieces: list[bytes]) -> bytes:
    """The text of ``pieces`` as a single gzip member (a decoder that stops after one reads it all)."""
    body = b"".join(pieces)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = decoder.decompress(body)
    assert decoder.eof and decoder.unused_data == b"", "more than one gzip member, or a truncated one"
    assert gzip.decompress(body) == text  # gzip checks the CRC-32 and the length
    return text


def random_parts(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        b"".join(
            b'metric{target="t%d",le="%d"} %d\n' % (rng.randrange(50), i, rng.randrange(10**6))
            for i in range(n)
        )
        for n in (rng.randrange(0, 300) for _ in range(count))
    ]


def test_the_pieces_are_one_gzip_member_of_the_joined_parts() -> None:
    parts = random_parts(40, seed=1)
    cache = GzipCache()
    assert one_member(cache.gzip(parts)) == b"".join(parts)
    assert one_member(GzipCache(level=9).gzip(parts)) == b"".join(parts)
    assert one_member(cache.gzip([])) == b""
    assert one_member(cache.gzip([b"", b"", b"x\n", b""])) == b"x\n"


def test_a_scrape_deflates_only_the_parts_that_changed() -> None:
    parts = random_parts(30, seed=2)
    cache = GzipCache()
    first = cache.gzip(parts)
    assert cache.last_deflated == sum(len(p) for p in parts)
    again = cache.gzip(parts)
    assert cache.last_deflated == 0 and again == first  # the same objects: nothing deflated again
    changed = list(parts)
    changed[7] = b'metric{target="new"} 1\n' * 20
    changed[21] = parts[21][:1] + parts[21][1:]  # equal bytes, another object: deflated again
    third = cache.gzip(changed)
    assert cache.last_deflated == len(changed[7]) + len(changed[21])
    assert one_member(third) == b"".join(changed)


def test_cached_blocks_splice_anywhere() -> None:
    """A block made after one part is valid after any other: it refers to nothing before it."""
    parts = random_parts(25, seed=3)
    cache = GzipCache()
    cache.gzip(parts)
    shuffled = list(parts)
    random.Random(4).shuffle(shuffled)
    repeated = [*shuffled, parts[0], parts[0]]
    assert one_member(cache.gzip(repeated)) == b"".join(repeated)
    assert cache.last_deflated == 0  # every block came from the cache, in new places
    assert one_member(cache.gzip(list(reversed(parts)))) == b"".join(reversed(parts))


def test_only_the_last_scrapes_parts_are_kept() -> None:
    cache = GzipCache()
    old = random_parts(10, seed=5)
    cache.gzip(old)
    new = random_parts(10, seed=6)
    cache.gzip(new)
    cache.gzip(old)
    assert cache.last_deflated == sum(len(p) for p in old)  # forgotten after one scrape without them


# --- the parts ProbeMetrics hands out: pages and groups that change only with their series ------


def many_pairs(metrics: ProbeMetrics, targets: int) -> list[Pair]:
    pairs = [Pair(f"t{i:03d}", flow, 60.0, 30.0) for i in range(targets) for flow in ("list", "session")]
    metrics.configure(pairs)
    return pairs


def run(metrics: ProbeMetrics, pair: Pair, seconds: float) -> None:
    steps = [StepResult(pair.flow, f"{pair.flow}.{name}", seconds, ok=True) for name in ("a", "b")]
    metrics.record(Outcome(pair.target, pair.flow, "success", seconds, steps, finished_at=1e9 + seconds))


def test_pages_and_groups_follow_their_series_byte_for_byte() -> None:
    metrics = ProbeMetrics(process=False)
    pairs = many_pairs(metrics, targets=PAGE_SERIES)  # two flows each: every family spans pages
    for index, pair in enumerate(pairs):
        run(metrics, pair, 0.01 * (index % 7))
    before = metrics.render_parts()
    assert b"".join(before) == generate_latest(metrics.registry)
    run(metrics, pairs[3], 9.5)  # the first page of each family, the group of one (target, flow)
    run(metrics, pairs[-1], 0.75)  # the last page
    after = metrics.render_parts()
    assert b"".join(after) == generate_latest(metrics.registry)
    assert b"".join(metrics.render_parts(openmetrics=True)) + b"# EOF\n" == openmetrics.generate_latest(
        metrics.registry
    )
    kept = {id(part) for part in before} & {id(part) for part in after}
    changed = [part for part in after if id(part) not in kept]
    assert 0 < len(changed) < len(after) // 4  # most parts are the very same objects as before
    assert any(
        b'target="t001",flow="list"' in part or b'flow="list",target="t001"' in part for part in changed
    )
    assert all(b'target="t050"' not in part for part in changed if len(part) < 5000)
    # a series that appears later lands in its place, in both formats
    metrics.configure([Pair("t000-late", "list", 60.0, 30.0)])
    run(metrics, Pair("t000-late", "list", 60.0, 30.0), 0.2)
    assert b"".join(metrics.render_parts()) == generate_latest(metrics.registry)


def test_the_gzipped_exposition_tracks_the_metrics() -> None:
    metrics = ProbeMetrics(process=False)
    pairs = many_pairs(metrics, targets=40)
    cache = GzipCache()
    for round_ in range(3):
        for pair in pairs[round_::5]:
            run(metrics, pair, 0.1 * round_ + 0.003)
        for accept in (None, OPENMETRICS_ACCEPT):
            parts, _ = metrics.exposition(accept)
            assert one_member(cache.gzip(parts)) == b"".join(parts)
    parts, _ = metrics.exposition(None)
    cache.gzip(parts)
    run(metrics, pairs[0], 1.0)
    parts, _ = metrics.exposition(None)
    assert one_member(cache.gzip(parts)) == generate_latest(metrics.registry)
    assert 0 < cache.last_deflated < len(b"".join(parts)) // 2

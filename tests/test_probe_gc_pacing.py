"""The exporter's full garbage collections: between scrapes, never during one, and a freeze after the
first round (probe/gc_pacing.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from ksentinel.probe import gc_pacing
from ksentinel.probe.gc_pacing import IDLE_SECONDS, NEVER, FullCollections


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector_as_it_was() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def scrape(pacing: FullCollections) -> float:
    pacing.scrape_started()
    pacing.scrape_answered()
    assert pacing.answered_at is not None
    return pacing.answered_at


def test_a_full_collection_runs_in_the_quiet_after_a_scrape_once_per_period(
    collector_as_it_was: None,
) -> None:
    clock = Clock()
    pacing = FullCollections(every=30.0, backstop=120.0, clock=clock)
    taken = []
    for second in range(95):  # a scrape every second
        answered = scrape(pacing)
        clock.now += 0.1
        if pacing.after_scrape(answered):
            taken.append(second)
        assert not pacing.due(), "the poll collected while scrapes come"
        clock.now += 0.9
    assert taken == [30, 60, 90]
    assert pacing.collections == 3


def test_no_full_collection_when_another_scrape_came_or_is_under_way(collector_as_it_was: None) -> None:
    clock = Clock()
    pacing = FullCollections(every=30.0, backstop=120.0, clock=clock)
    clock.now += 40.0
    first = scrape(pacing)
    clock.now += 0.05
    second = scrape(pacing)  # a second Prometheus scraped meanwhile: its own quiet moment decides
    assert not pacing.after_scrape(first)
    pacing.scrape_started()
    assert not pacing.after_scrape(second), "collected while a scrape is under way"
    pacing.scrape_answered()
    assert pacing.after_scrape(pacing.answered_at or 0.0)


def test_the_backstop_collects_even_when_no_moment_is_quiet() -> None:
    clock = Clock()
    pacing = FullCollections(every=30.0, backstop=120.0, clock=clock)
    pacing.scrape_started()  # a scrape that never ends (a stuck client)
    clock.now += 119.9
    assert not pacing.due()
    clock.now += 0.1
    assert pacing.due()


def test_without_scrapes_the_period_alone_decides() -> None:
    clock = Clock()
    pacing = FullCollections(every=30.0, backstop=120.0, clock=clock)
    clock.now += 29.0
    assert not pacing.due()
    clock.now += 1.0
    assert pacing.due()
    scrape(pacing)  # scrapes came, then stopped
    clock.now += IDLE_SECONDS - 1
    assert not pacing.due()
    clock.now += 1
    assert pacing.due()


def test_the_first_round_is_frozen_at_the_next_quiet_moment(collector_as_it_was: None) -> None:
    clock = Clock()
    pacing = FullCollections(every=30.0, backstop=120.0, clock=clock)
    answered = scrape(pacing)
    clock.now += 0.1
    assert not pacing.after_scrape(answered), "the period has not passed and nothing asks for a freeze"
    gc.unfreeze()
    born = [[index] for index in range(1000)]  # tracked objects the freeze must take
    pacing.freeze_at_next()
    answered = scrape(pacing)
    clock.now += 0.1
    assert pacing.after_scrape(answered), "a freeze waits for the quiet moment, not for the period"
    assert pacing.frozen and gc.get_freeze_count() >= len(born)
    pacing.freeze_at_next()  # once only
    answered = scrape(pacing)
    assert not pacing.after_scrape(answered)


def test_run_paces_live_scrapes_and_gives_the_collections_back(
    collector_as_it_was: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_pacing, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(gc_pacing, "QUIET_SECONDS", 0.01)
    pacing = FullCollections(every=3600.0, backstop=3600.0)
    ready = {"now": False}
    before = gc.get_threshold()

    async def main() -> tuple[tuple[int, int, int], int]:
        task = asyncio.get_running_loop().create_task(pacing.run(lambda: ready["now"]))
        await asyncio.sleep(0.05)
        scrape(pacing)
        await asyncio.sleep(0.05)  # a quiet moment passed, but nothing is wanted yet
        during, waiting = gc.get_threshold(), gc.get_freeze_count()
        ready["now"] = True  # the first round is done: frozen in the quiet after the next scrape
        await asyncio.sleep(0.05)
        scrape(pacing)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if pacing.frozen:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return during, waiting

    gc.unfreeze()
    during, waiting = asyncio.run(main())
    assert during == (before[0], before[1], NEVER)
    assert waiting == 0, "frozen before the first round was done"
    assert pacing.frozen and pacing.collections == 1
    assert gc.get_threshold() == before, "CPython's thresholds not restored"


def test_run_is_bounded_and_restores_the_thresholds(
    collector_as_it_was: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_pacing, "POLL_SECONDS", 0.0)
    before = gc.get_threshold()
    asyncio.run(FullCollections().run(lambda: False, max_polls=5))
    assert gc.get_threshold() == before

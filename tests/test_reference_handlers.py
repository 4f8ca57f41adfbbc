"""The platform's declared schema and its handlers describe the same API."""

from __future__ import annotations

import inspect

from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.services import load_all


def test_every_declared_action_has_a_handler_with_the_declared_parameters() -> None:
    handlers = load_all()
    declared = {
        (service.id, action.name.lower()): action
        for service in SCHEMA.services.values()
        for action in service.actions
    }
    assert set(handlers) == set(declared), "handlers and apidef disagree on which actions exist"
    for key, action in declared.items():
        signature = inspect.signature(handlers[key].handler)
        names = [p for p in signature.parameters if p != "call"]
        assert names == [p.name for p in action.params], (
            f"{key}: handler params {names} differ from the schema"
        )


def test_cacheable_actions_are_reads_and_writes_are_not_cached() -> None:
    for (service, action), registration in load_all().items():
        assert not (registration.cacheable and registration.writes), (service, action)
        if action in ("get", "list", "count") and service != "session":  # session.get is never cached
            assert registration.cacheable, f"{service}.{action} should go through the response cache"

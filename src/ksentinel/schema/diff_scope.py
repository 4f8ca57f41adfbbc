"""``schema diff --scope``: only the changes that touch the actions of the contract scope.

The rows are filtered, not the schemas: an action row is kept when the scope covers the action
(by its service's name or id), a service row when the scope covers one of its actions in either
schema, a class, property or enum row when the class or enum is reachable from the in-scope actions
of either schema (:func:`ksentinel.schema.scope.reachable`: parameters, results, properties, base
classes and subclasses), a property row also when one of the subclasses it lists is. Error codes and
``stale-ignore`` rows are always kept (errors are not tied to actions in the model).
"""

from __future__ import annotations

from collections.abc import Iterable

from ksentinel.errors import ConfigError
from ksentinel.schema.diff import Change
from ksentinel.schema.model import Schema
from ksentinel.schema.scope import Scope


def restrict_to_scope(changes: Iterable[Change], old: Schema, new: Schema, scope: Scope) -> list[Change]:
    """The changes within ``scope``; raises :class:`ConfigError` when the scope covers no action of
    either schema."""
    scoped = (scope.apply(old), scope.apply(new))
    if not any(schema.services for schema in scoped):
        raise ConfigError("the scope leaves no action of either schema (check [contract] include/exclude)")
    classes = set(scoped[0].classes) | set(scoped[1].classes)
    enums = set(scoped[0].enums) | set(scoped[1].enums)

    def keep(change: Change) -> bool:
        kind = change.subject[0] if change.subject else ""
        if kind == "action":
            _, service_id, service_name, action = change.subject
            return scope.includes(service_name, action) or scope.includes(service_id, action)
        if kind == "service":
            services = (schema.service(change.subject[1]) for schema in (old, new))
            return any(scope.covers(s, a.name) for s in services if s is not None for a in s.actions)
        if kind == "class":
            return change.subject[1] in classes or any(name in classes for name in change.affected)
        if kind == "enum":
            return change.subject[1] in enums
        return True

    return [change for change in changes if keep(change)]

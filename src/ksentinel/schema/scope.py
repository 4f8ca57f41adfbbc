"""Which ``service.action`` pairs a run covers, and which of them change or remove existing state.

Patterns are shell globs over ``service.action`` (``baseEntry.*``, ``*.list``, ``media.get``),
matched case-insensitively against both the service's name (``uploadToken``) and its URL id
(``uploadtoken``, ``metadata_metadata`` for plugin services). A pattern without a dot names a whole
service (``media`` = ``media.*``).

*Destructive* actions delete, modify or change the state of objects that already exist (including
objects the run did not create, such as a partner's configuration or a session in use). Creating a
new object (``add``, ``clone``, ``upload``) is not destructive.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.schema.model import SIMPLE_TYPES, Schema, ServiceDef

DEFAULT_DESTRUCTIVE: tuple[str, ...] = (
    # remove or overwrite
    "*.delete*",
    "*.*delete",  # bulkDelete, submitDelete, abortStorageDelete, ...
    "*.update*",
    "*.*update",  # submitUpdate
    "*.remove*",
    "*.purge*",
    "*.replace*",
    "*.set*",  # setContent, setAsDefault, setInitialPassword, ...
    "*.move",
    "*.revert",
    "*.convert",
    "*.reconvert",
    "*.regenerate*",
    # workflow state of existing objects
    "*.approve*",
    "*.reject*",
    "*.flag",
    "*.cancel*",
    "*.abort*",
    "*.retry*",
    "*.execute*",
    "*.archive",
    "*.recycle",
    "*.restore*",
    "*.activate",
    "*.deactivate",
    "*.enable*",
    "*.disable*",
    "*.suspend*",
    "*.lock*",
    "*.unlock*",
    "*.free*",
    "*.kill",
    "*.clean*",
    "*.stop*",
    "*.deregister*",
    "*.unregister*",
    "*.markoffline",
    "*.demote*",
    # credentials and sessions
    "*.end",  # session.end invalidates the KS in use
    "*.invalidate",
    "*.reset*",
    "*.*resetpassword",
)

SCOPE_KEYS = ("include", "exclude", "destructive", "fuzz_include")
_PATTERN = re.compile(r"^[A-Za-z0-9_*?\[\]!\-]+(\.[A-Za-z0-9_*?\[\]!\-]+)?$")


@dataclass(frozen=True)
class Scope:
    """Glob patterns choosing the in-scope actions, marking the destructive ones and (``fuzz_include``)
    the ones the contract suite fuzzes beyond its default."""

    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()
    destructive: Sequence[str] = DEFAULT_DESTRUCTIVE
    #: in-scope actions the contract suite fuzzes beyond its default (reads, add/delete pairs); see
    #: ``ksentinel.contract.fuzz_scope`` (the schema pipeline itself does not use it)
    fuzz_include: Sequence[str] = ()
    _compiled: tuple[tuple[re.Pattern[str], ...], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = []
        for key in SCOPE_KEYS:
            patterns = tuple(_patterns(getattr(self, key), key))
            object.__setattr__(self, key, patterns)
            compiled.append(tuple(re.compile(fnmatch.translate(_normalize(p))) for p in patterns))
        object.__setattr__(self, "_compiled", tuple(compiled))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, section: str = "contract") -> Scope:
        """A scope from a config table such as ``[contract]``; unknown keys are rejected."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"[{section}] must be a table")
        for key in data:
            if key not in SCOPE_KEYS:
                hint = did_you_mean(str(key), SCOPE_KEYS, otherwise=f" (known keys: {', '.join(SCOPE_KEYS)})")
                raise ConfigError(f"unknown key {key!r} in [{section}]{hint}")
        values: dict[str, tuple[str, ...]] = {}
        for key in SCOPE_KEYS:
            if key in data:
                value = data[key]
                if isinstance(value, str) or not isinstance(value, Sequence):
                    raise ConfigError(f"[{section}] {key} must be a list of patterns such as ['baseEntry.*']")
                values[key] = tuple(_patterns(value, key, section))
        return cls(**values)

    # --------------------------------------------------------------------------------- queries

    def includes(self, service: str, action: str) -> bool:
        """Whether ``service.action`` (service name or id) is in scope."""
        include, exclude, _ = self._compiled[:3]
        return _match(include, service, action) and not _match(exclude, service, action)

    def is_destructive(self, service: str, action: str) -> bool:
        return _match(self._compiled[2], service, action)

    def covers(self, service: ServiceDef, action: str) -> bool:
        """Like :meth:`includes` for a declared service: matches its name or its id."""
        include, exclude, _ = self._compiled[:3]
        names = (service.name, service.id)
        return any(_match(include, n, action) for n in names) and not any(
            _match(exclude, n, action) for n in names
        )

    def destroys(self, service: ServiceDef, action: str) -> bool:
        """Like :meth:`is_destructive` for a declared service (its name or its id)."""
        return any(_match(self._compiled[2], n, action) for n in (service.name, service.id))

    def apply(self, schema: Schema) -> Schema:
        """Only the in-scope actions (services left without one are dropped), and only the classes
        and enums those actions reach: through parameters and results, base classes, properties and
        subclasses (a parameter typed ``KalturaBaseEntry`` may carry any of them). Errors are kept."""
        services: dict[str, ServiceDef] = {}
        for service_id, service in schema.services.items():
            actions = tuple(a for a in service.actions if self.covers(service, a.name))
            if actions:
                services[service_id] = ServiceDef(
                    service.id,
                    service.name,
                    actions,
                    description=service.description,
                    plugin=service.plugin,
                    deprecated=service.deprecated,
                )
        classes, enums = reachable(schema, services.values())
        return Schema(
            schema.api_version,
            {name: enum for name, enum in schema.enums.items() if name in enums},
            {name: cls for name, cls in schema.classes.items() if name in classes},
            services,
            dict(schema.errors),
        )


def reachable(schema: Schema, services: Iterable[ServiceDef]) -> tuple[set[str], set[str]]:
    """Names of the classes and enums that the actions of ``services`` reach.

    A class used as a type (by a parameter, a result or a property) brings its subclasses, which
    may stand in for it, and its base classes, whose properties it inherits; a base class brings
    only what its own properties use, not its other subclasses.
    """
    children: dict[str, list[str]] = {}
    for cls in schema.classes.values():
        if cls.base:
            children.setdefault(cls.base, []).append(cls.name)
    classes: set[str] = set()
    enums: set[str] = set()
    used: set[str] = set()
    pending: list[str] = []

    def use(*names: str | None) -> None:
        for name in names:
            if not name or name in SIMPLE_TYPES:
                continue
            if name in schema.enums:
                enums.add(name)
            elif name in schema.classes and name not in used:
                used.add(name)
                pending.append(name)

    for service in services:
        for action in service.actions:
            use(action.result_type, action.result_array_type)
            for param in action.params:
                use(param.type, param.enum_type, param.array_type)
    while pending:
        name = pending.pop()
        use(*children.get(name, ()))
        for cls in schema.lineage(name):  # the class, then its bases
            if cls.name in classes:
                break
            classes.add(cls.name)
            for prop in cls.props:
                use(prop.type, prop.enum_type, prop.array_type, prop.values_enum_type)
    return classes, enums


# ------------------------------------------------------------------------------------------- helpers


def _patterns(value: Any, key: str, section: str = "contract") -> Iterable[str]:
    if isinstance(value, str):
        value = (value,)
    for pattern in value:
        if not isinstance(pattern, str) or not _PATTERN.match(pattern):
            raise ConfigError(
                f"[{section}] {key}: {pattern!r} is not a 'service.action' glob (e.g. 'baseEntry.*', '*.list')"
            )
        yield pattern


def _normalize(pattern: str) -> str:
    pattern = pattern.lower()
    return pattern if "." in pattern else f"{pattern}.*"


def _match(patterns: tuple[re.Pattern[str], ...], service: str, action: str) -> bool:
    name = f"{service}.{action}".lower()
    return any(p.match(name) for p in patterns)

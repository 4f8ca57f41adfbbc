"""The changes between two Kaltura API schemas, one row per change, each under a stable rule id.

The two :class:`~ksentinel.schema.model.Schema` models are compared, not their text: services and
actions (by id and name, case-insensitively, as Kaltura dispatches them), parameters (by name),
classes with what they inherit, enums (by constant name) and error codes. Every rule has one
severity: ``breaking`` (an existing client can fail), ``warning`` (it may behave differently) or
``info`` (new things it does not use). docs/schema-diff.md has the table.

Inherited properties count: a class is compared by its *effective* properties (its own and its
bases'). A property change is reported once, on the class that declares the property, and the
subclasses that inherit the very same change are listed in that row's ``affected``; a subclass has
a row of its own only when its change differs (it lost the property because its base changed, or
it redeclares the property).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ksentinel.schema.model import ActionDef, ParamDef, PropDef, Schema, ServiceDef

SEVERITIES = ("breaking", "warning", "info")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # one of SEVERITIES
    summary: str


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("service-removed", "breaking", "a service is gone, with every action it had"),
        Rule("action-removed", "breaking", "an action is gone"),
        Rule("session-became-required", "breaking", "an action served without a KS now needs one"),
        Rule("result-type-changed", "breaking", "an action returns another type"),
        Rule("parameter-removed", "breaking", "a parameter of an action is gone"),
        Rule("parameter-added-required", "breaking", "an action has a new mandatory parameter"),
        Rule("parameter-became-required", "breaking", "an optional parameter is now mandatory"),
        Rule("parameter-type-changed", "breaking", "a parameter has another type, enum or item type"),
        Rule("class-removed", "breaking", "a class is gone"),
        Rule("property-removed", "breaking", "a class (or what it inherits) lost a property"),
        Rule("property-type-changed", "breaking", "a property has another type, enum or item type"),
        Rule("property-became-read-only", "breaking", "a property clients could set is now read-only"),
        Rule("enum-removed", "breaking", "an enum is gone"),
        Rule("enum-type-changed", "breaking", "an enum's values changed kind (int or string)"),
        Rule("enum-value-removed", "breaking", "an enum constant is gone"),
        Rule("enum-value-changed", "breaking", "an enum constant has another value"),
        Rule("error-code-removed", "breaking", "an error code is gone"),
        Rule("action-deprecated", "warning", "an action is marked deprecated"),
        Rule("parameter-default-changed", "warning", "an optional parameter has another default"),
        Rule("class-base-changed", "warning", "a class derives from another base class"),
        Rule("stale-ignore", "warning", "an entry of the ignore file matches no change"),
        Rule("service-added", "info", "a new service"),
        Rule("action-added", "info", "a new action"),
        Rule("parameter-added-optional", "info", "an action has a new optional parameter"),
        Rule("parameter-became-optional", "info", "a mandatory parameter is now optional"),
        Rule("class-added", "info", "a new class"),
        Rule("property-added", "info", "a class (or what it inherits) has a new property"),
        Rule("enum-added", "info", "a new enum"),
        Rule("enum-value-added", "info", "an enum has a new constant"),
        Rule("error-code-added", "info", "a new error code"),
    )
}

_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Change:
    """One row: what changed (``rule``), where (``place``), from what to what.

    ``place`` is ``service.action[.parameter]`` (the service's name, or its id when two services
    share a name), ``Class.property``, ``Enum.CONSTANT`` or a class, enum, service or error name.
    ``subject`` says what the row is about, for the scope filter: ``("action", service id, service
    name, action)``, ``("service", id, name)``, ``("class", name)``, ``("enum", name)``,
    ``("error", name)`` or ``("ignore",)``.
    """

    rule: str
    place: str
    old: str | None = None
    new: str | None = None
    #: the subclasses that inherit this very property change (``property-*`` rows)
    affected: tuple[str, ...] = ()
    #: accepted by an entry of the ignore file (``reason`` says why)
    ignored: bool = False
    #: the ignore entry's reason (ignored rows and ``stale-ignore`` rows)
    reason: str | None = None
    subject: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown schema diff rule {self.rule!r}")

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    @property
    def breaking(self) -> bool:
        return self.severity == "breaking"

    def sort_key(self) -> tuple[bool, int, str, str]:
        return (self.ignored, _RANK[self.severity], self.place.lower(), self.rule)

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "breaking": self.breaking,
            "place": self.place,
            "old": self.old,
            "new": self.new,
            "affected": list(self.affected),
            "ignored": self.ignored,
            "reason": self.reason,
        }


def severity_rank(severity: str) -> int:
    """0 for ``breaking``, then ``warning``, then ``info``."""
    return _RANK[severity]


def diff_schemas(old: Schema, new: Schema) -> list[Change]:
    """Every change from ``old`` to ``new``, sorted: breaking first, then by place and rule."""
    changes = [
        *_services(old, new),
        *_classes(old, new),
        *_enums(old, new),
        *_errors(old, new),
    ]
    return sorted(changes, key=Change.sort_key)


# ------------------------------------------------------------------------------ services and actions


def _labels(schema: Schema) -> dict[str, str]:
    """Each service's place label (lower-case id → name, or the id when its name is shared)."""
    counts: dict[str, int] = {}
    for service in schema.services.values():
        counts[service.name.lower()] = counts.get(service.name.lower(), 0) + 1
    return {
        service.id.lower(): service.name if counts[service.name.lower()] == 1 else service.id
        for service in schema.services.values()
    }


def _services(old: Schema, new: Schema) -> Iterator[Change]:
    old_services = {s.id.lower(): s for s in old.services.values()}
    new_services = {s.id.lower(): s for s in new.services.values()}
    old_labels, new_labels = _labels(old), _labels(new)
    for key in sorted(old_services.keys() | new_services.keys()):
        before, after = old_services.get(key), new_services.get(key)
        if after is None:
            assert before is not None
            yield Change(
                "service-removed",
                old_labels[key],
                old=_count(len(before.actions), "action"),
                subject=("service", before.id, before.name),
            )
        elif before is None:
            yield Change(
                "service-added",
                new_labels[key],
                new=_count(len(after.actions), "action"),
                subject=("service", after.id, after.name),
            )
        else:
            yield from _actions(before, after, new_labels[key])


def _actions(before: ServiceDef, after: ServiceDef, label: str) -> Iterator[Change]:
    old_actions = {a.name.lower(): a for a in before.actions}
    new_actions = {a.name.lower(): a for a in after.actions}
    for key in sorted(old_actions.keys() | new_actions.keys()):
        was, now = old_actions.get(key), new_actions.get(key)
        action = now or was
        assert action is not None
        place = f"{label}.{action.name}"
        subject = ("action", after.id, after.name, action.name)
        if now is None:
            assert was is not None
            yield Change("action-removed", place, old=_signature(was), subject=subject)
        elif was is None:
            yield Change("action-added", place, new=_signature(now), subject=subject)
        else:
            yield from _action(was, now, place, subject)


def _action(was: ActionDef, now: ActionDef, place: str, subject: tuple[str, ...]) -> Iterator[Change]:
    if now.deprecated and not was.deprecated:
        yield Change("action-deprecated", place, old="supported", new="deprecated", subject=subject)
    if now.session_required == "always" and was.session_required != "always":
        yield Change(
            "session-became-required",
            place,
            old=f"sessionRequired={was.session_required}",
            new="sessionRequired=always",
            subject=subject,
        )
    if _result(was) != _result(now):
        yield Change("result-type-changed", place, old=_result(was), new=_result(now), subject=subject)
    old_params = {p.name: p for p in was.params}
    new_params = {p.name: p for p in now.params}
    names = [p.name for p in was.params] + [p.name for p in now.params if p.name not in old_params]
    for name in names:
        before, after = old_params.get(name), new_params.get(name)
        where = f"{place}.{name}"
        if after is None:
            assert before is not None
            yield Change("parameter-removed", where, old=_param(before), subject=subject)
        elif before is None:
            rule = "parameter-added-optional" if after.optional else "parameter-added-required"
            yield Change(rule, where, new=_param(after), subject=subject)
        else:
            yield from _parameter(before, after, where, subject)


def _parameter(before: ParamDef, after: ParamDef, where: str, subject: tuple[str, ...]) -> Iterator[Change]:
    old_type = _type(before.type, before.enum_type, before.array_type)
    new_type = _type(after.type, after.enum_type, after.array_type)
    if old_type != new_type:
        yield Change("parameter-type-changed", where, old=old_type, new=new_type, subject=subject)
    if before.optional and not after.optional:
        yield Change(
            "parameter-became-required", where, old=_optional(before), new="required", subject=subject
        )
    elif after.optional and not before.optional:
        yield Change(
            "parameter-became-optional", where, old="required", new=_optional(after), subject=subject
        )
    elif (
        before.optional
        and before.default is not None
        and after.default is not None
        and before.default != after.default
    ):
        yield Change(
            "parameter-default-changed",
            where,
            old=f"default {before.default}",
            new=f"default {after.default}",
            subject=subject,
        )


def _signature(action: ActionDef) -> str:
    params = ", ".join(
        f"{p.name}: {_type(p.type, p.enum_type, p.array_type)}{'?' if p.optional else ''}"
        for p in action.params
    )
    return f"({params}) -> {_result(action)}"


def _result(action: ActionDef) -> str:
    if action.result_type is None:
        return "void"
    return _type(action.result_type, None, action.result_array_type)


def _param(param: ParamDef) -> str:
    text = _type(param.type, param.enum_type, param.array_type)
    return f"{text}, {_optional(param)}" if param.optional else f"{text}, required"


def _optional(param: ParamDef) -> str:
    return "optional" if param.default is None else f"optional, default {param.default}"


def _type(type_name: str, enum_type: str | None, array_type: str | None) -> str:
    if type_name in ("array", "map"):
        return f"{type_name} of {array_type or '?'}"
    return f"{type_name} ({enum_type})" if enum_type else type_name


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# ------------------------------------------------------------------------------------------- classes


def _classes(old: Schema, new: Schema) -> Iterator[Change]:
    common: list[str] = []
    for name in sorted(old.classes.keys() | new.classes.keys()):
        before, after = old.classes.get(name), new.classes.get(name)
        subject = ("class", name)
        if after is None:
            assert before is not None
            yield Change("class-removed", name, old=_class(before.base), subject=subject)
        elif before is None:
            yield Change("class-added", name, new=_class(after.base), subject=subject)
        else:
            common.append(name)
            if before.base != after.base:
                yield Change(
                    "class-base-changed",
                    name,
                    old=_class(before.base),
                    new=_class(after.base),
                    subject=subject,
                )
    yield from _properties(old, new, common)


def _class(base: str | None) -> str:
    return f"class extends {base}" if base else "class"


def _properties(old: Schema, new: Schema, common: Iterable[str]) -> Iterator[Change]:
    """Property changes of the effective property sets, each folded into the declaring class's row."""
    events: dict[str, dict[str, Change]] = {}
    for name in common:
        found = dict(_property_changes(name, old.properties(name), new.properties(name)))
        if found:
            events[name] = found
    roots: dict[tuple[str, str], str] = {}

    def root(class_name: str, prop: str) -> str:
        """The class whose row carries ``class_name``'s change of ``prop`` (itself, or a base with the
        identical change that declares the property)."""
        key = (class_name, prop)
        if key not in roots:
            roots[key] = class_name
            change = events[class_name][prop]
            for schema in (old, new):
                declarer = _declarer(schema, class_name, prop)
                if declarer is None or declarer == class_name:
                    continue
                base_change = events.get(declarer, {}).get(prop)
                if base_change is not None and _same(base_change, change):
                    roots[key] = root(declarer, prop)
                    break
        return roots[key]

    affected: dict[tuple[str, str], list[str]] = {}
    for class_name in sorted(events):
        for prop in events[class_name]:
            owner = root(class_name, prop)
            if owner != class_name:
                affected.setdefault((owner, prop), []).append(class_name)
    for class_name in sorted(events):
        for prop, change in events[class_name].items():
            if roots[(class_name, prop)] != class_name:
                continue
            subclasses = tuple(sorted(affected.get((class_name, prop), ())))
            yield Change(
                change.rule, change.place, change.old, change.new, subclasses, subject=change.subject
            )


def _property_changes(
    class_name: str, old_props: tuple[PropDef, ...], new_props: tuple[PropDef, ...]
) -> Iterator[tuple[str, Change]]:
    before = {p.name: p for p in old_props}  # a redeclared property: the most derived one wins
    after = {p.name: p for p in new_props}
    subject = ("class", class_name)
    for name in list(before) + [n for n in after if n not in before]:
        was, now = before.get(name), after.get(name)
        place = f"{class_name}.{name}"
        if now is None:
            assert was is not None
            yield name, Change("property-removed", place, old=_prop(was), subject=subject)
        elif was is None:
            yield name, Change("property-added", place, new=_prop(now), subject=subject)
        elif _prop(was) != _prop(now):
            yield (
                name,
                Change("property-type-changed", place, old=_prop(was), new=_prop(now), subject=subject),
            )
        elif now.read_only and not was.read_only:
            yield (
                name,
                Change("property-became-read-only", place, old="writable", new="read-only", subject=subject),
            )


def _prop(prop: PropDef) -> str:
    return _type(prop.type, prop.enum_type, prop.array_type)


def _declarer(schema: Schema, class_name: str, prop: str) -> str | None:
    """The nearest class of ``class_name``'s lineage in ``schema`` that declares ``prop`` itself."""
    for cls in schema.lineage(class_name):
        if any(p.name == prop for p in cls.props):
            return cls.name
    return None


def _same(a: Change, b: Change) -> bool:
    return (a.rule, a.old, a.new) == (b.rule, b.old, b.new)


# ------------------------------------------------------------------------------------ enums, errors


def _enums(old: Schema, new: Schema) -> Iterator[Change]:
    for name in sorted(old.enums.keys() | new.enums.keys()):
        before, after = old.enums.get(name), new.enums.get(name)
        subject = ("enum", name)
        if after is None:
            assert before is not None
            yield Change("enum-removed", name, old=f"{before.enum_type} enum", subject=subject)
            continue
        if before is None:
            yield Change("enum-added", name, new=f"{after.enum_type} enum", subject=subject)
            continue
        if before.enum_type != after.enum_type:
            yield Change(
                "enum-type-changed", name, old=before.enum_type, new=after.enum_type, subject=subject
            )
        old_consts, new_consts = dict(before.consts), dict(after.consts)
        for const, value in before.consts:
            if const not in new_consts:
                yield Change("enum-value-removed", f"{name}.{const}", old=value, subject=subject)
            elif new_consts[const] != value:
                yield Change(
                    "enum-value-changed", f"{name}.{const}", old=value, new=new_consts[const], subject=subject
                )
        for const, value in after.consts:
            if const not in old_consts:
                yield Change("enum-value-added", f"{name}.{const}", new=value, subject=subject)


def _errors(old: Schema, new: Schema) -> Iterator[Change]:
    for name in sorted(old.errors.keys() | new.errors.keys()):
        before, after = old.errors.get(name), new.errors.get(name)
        if after is None:
            assert before is not None
            yield Change("error-code-removed", name, old=before.message, subject=("error", name))
        elif before is None:
            yield Change("error-code-added", name, new=after.message, subject=("error", name))

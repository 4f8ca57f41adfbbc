"""The types that describe a Kaltura API: enums, classes, services, actions and errors.

The reference platform declares what it implements with these types (``apidef.py``); the same
declaration drives parameter parsing, response serialization and ``/api_v3/api_schema.php``, so the
served schema can never drift from what the server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

SIMPLE_TYPES = frozenset({"int", "string", "bool", "float", "bigint", "file"})

#: ``sessionRequired`` of the actions a Kaltura server serves without a KS (``NO_SESSION_ROLE``,
#: kaltura-api-v3.md section 3), as the 22.15.0 schema gives it, keyed ``serviceid.action`` in lower
#: case. A schema whose actions carry no ``sessionRequired`` (apiVersion 3.x) is read with these
#: values, and "always" for every other action (docs/contracts.md, "Old schemas").
SESSION_REQUIRED_BY_DEFAULT: dict[str, str] = {
    **dict.fromkeys(
        (
            "session.start",
            "session.startwidgetsession",
            "session.impersonate",
            "system.ping",
            "system.gettime",
            "system.getversion",
            "system.gethealthcheck",
            "system.pingdatabase",
            "user.login",
            "user.loginbyloginid",
            "user.resetpassword",
            "user.setinitialpassword",
            "user.updatelogindata",
            "adminuser.login",
            "adminuser.resetpassword",
            "adminuser.setinitialpassword",
            "adminuser.updatepassword",
            "partner.getsecrets",
            "stats.collect",
            "stats.kmccollect",
            "stats.reportdevicecapabilities",
            "stats.reporterror",
            "stats.reportkceerror",
            "fileasset.get",
            "fileasset.list",
            "fileasset.serve",
            "livestream.getlivestreamstats",
            "shortlink_shortlink.goto",
        ),
        "none",
    ),
    **dict.fromkeys(
        (
            "session.end",
            "baseentry.flag",
            "baseentry.serveplaybackkey",
            "media.flag",
            "widget.get",
            "playlist.execute",
            "permission.getcurrentpermissions",
            "partner.register",
            "partner.registrationvalidation",
            "livechannel.islive",
            "livestream.getdetails",
            "livestream.islive",
            "search.externallogin",
            "search.getmediainfo",
            "search.search",
            "search.searchurl",
            "report.serve",
            "document.serve",
            "document.servebyflavorparamsid",
            "document_documents.serve",
            "document_documents.servebyflavorparamsid",
            "thumbasset.serve",
            "thumbasset.servebyentryid",
            "attachment_attachmentasset.serve",
            "caption_captionasset.serve",
            "caption_captionasset.serveasjson",
            "caption_captionasset.servewebvtt",
        ),
        "optional",
    ),
}


def default_session_required(service_id: str, action_name: str) -> str:
    """``sessionRequired`` of an action whose schema does not say: "none" or "optional" for what the
    server serves without a KS (:data:`SESSION_REQUIRED_BY_DEFAULT`), else "always"."""
    return SESSION_REQUIRED_BY_DEFAULT.get(f"{service_id}.{action_name}".lower(), "always")


@dataclass(frozen=True)
class EnumDef:
    name: str
    enum_type: str  # "int" | "string"
    consts: tuple[tuple[str, str], ...]  # (NAME, value as text), sorted by value as the real schema is
    deprecated: bool = False
    plugin: str | None = None  # the plugin that declares the enum

    def values(self) -> frozenset[str]:
        return frozenset(value for _, value in self.consts)


@dataclass(frozen=True)
class PropDef:
    name: str
    type: str  # a simple type, a class name, "array" or "map"
    enum_type: str | None = None
    array_type: str | None = None
    read_only: bool = False
    insert_only: bool = False
    write_only: bool = False
    is_time: bool = False
    description: str = ""
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    multi_lingual: bool = False  # ``name`` also comes as ``multiLingual_name`` (array of translations)
    values_enum_type: str | None = None  # a comma-separated list of this enum's values
    requires_permissions: str | None = None  # e.g. "insert,update": only with a permission to set it
    utf8_truncate: int | None = None  # the server truncates longer values to this many bytes
    deprecated: bool = False


@dataclass(frozen=True)
class ClassDef:
    name: str
    props: tuple[PropDef, ...] = ()
    base: str | None = None
    abstract: bool = False
    description: str = ""
    plugin: str | None = None
    deprecated: bool = False


@dataclass(frozen=True)
class ParamDef:
    name: str
    type: str
    enum_type: str | None = None
    array_type: str | None = None
    optional: bool = False
    default: str | None = None  # the literal default as the schema writes it ("null", "true", "-1", "")
    is_time: bool = False
    description: str = ""


@dataclass(frozen=True)
class ActionDef:
    name: str
    params: tuple[ParamDef, ...] = ()
    result_type: str | None = None  # None = void
    result_array_type: str | None = None
    #: "always" | "optional" | "none"; without the attribute: :func:`default_session_required`
    session_required: str = "always"
    description: str = ""
    throws: tuple[str, ...] = ()
    deprecated: bool = False
    action_alias: str | None = None  # "service.action" this action is also reachable as
    plugin: str | None = None  # the plugin that adds this action to a core service

    @property
    def enable_in_multirequest(self) -> bool:
        return self.result_type != "file"


@dataclass(frozen=True)
class ServiceDef:
    """A service; two services are equal whatever the order of their actions (Kaltura dispatches
    actions by name and the schema file sorts them by name)."""

    id: str  # URL name, lowercase
    name: str  # camelCase
    actions: tuple[ActionDef, ...] = field(compare=False)
    description: str = ""
    plugin: str | None = None
    deprecated: bool = False
    _actions_by_name: tuple[ActionDef, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_actions_by_name", tuple(sorted(self.actions, key=lambda a: a.name)))


@dataclass(frozen=True)
class ErrorDef:
    name: str
    message: str  # with @PARAM@ placeholders
    parameters: tuple[str, ...] = ()


@dataclass
class Schema:
    """An API description with the look-ups the server needs (all case-insensitive where Kaltura is)."""

    api_version: str
    enums: dict[str, EnumDef]
    classes: dict[str, ClassDef]
    services: dict[str, ServiceDef]
    errors: dict[str, ErrorDef]
    _props_cache: dict[str, tuple[PropDef, ...]] = field(default_factory=dict, repr=False, compare=False)
    _actions: dict[tuple[str, str], tuple[ServiceDef, ActionDef]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for service in self.services.values():
            for action in service.actions:
                self._actions[(service.id.lower(), action.name.lower())] = (service, action)

    def service(self, service_id: str) -> ServiceDef | None:
        return self.services.get(service_id.lower())

    def action(self, service_id: str, action_name: str) -> tuple[ServiceDef, ActionDef] | None:
        return self._actions.get((service_id.lower(), action_name.lower()))

    def lineage(self, class_name: str) -> Iterator[ClassDef]:
        """The class and its bases, most derived first."""
        seen: set[str] = set()
        current = self.classes.get(class_name)
        while current is not None and current.name not in seen:
            seen.add(current.name)
            yield current
            current = self.classes.get(current.base) if current.base else None

    def properties(self, class_name: str) -> tuple[PropDef, ...]:
        """All properties of a class, base class first, as the serializer writes them."""
        cached = self._props_cache.get(class_name)
        if cached is None:
            chain = list(self.lineage(class_name))
            cached = tuple(prop for cls in reversed(chain) for prop in cls.props)
            self._props_cache[class_name] = cached
        return cached

    def property(self, class_name: str, prop_name: str) -> PropDef | None:
        for prop in self.properties(class_name):
            if prop.name == prop_name:
                return prop
        return None

    def is_subclass(self, class_name: str, base_name: str) -> bool:
        return any(cls.name == base_name for cls in self.lineage(class_name))

    def is_class(self, type_name: str) -> bool:
        return type_name in self.classes

"""``ksentinel schema diff``, the engine: one case per rule id on a small schema in the real
``api_schema.php`` format (``tests/data/schema-diff/base.xml``, edited line by line), inherited
properties, the scope filter, the ignore file, the three outputs, and the real 22.15.0 schema
(skipped where it is absent, see ``tests/helpers.py``).

The CLI is in tests/test_schema_diff_cli.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ksentinel.errors import ConfigError
from ksentinel.report.schema_diff_section import schema_diff_section
from ksentinel.schema.diff import RULES, Change, diff_schemas
from ksentinel.schema.diff_ignore import IgnoreEntry, apply_ignores, load_ignores
from ksentinel.schema.diff_output import DiffOutcome, DiffSide, render_json, render_junit, render_table
from ksentinel.schema.diff_scope import restrict_to_scope
from ksentinel.schema.model import Schema
from ksentinel.schema.scope import Scope, reachable
from ksentinel.schema.xml import parse_schema
from tests.helpers import real_schema_path

DATA = Path(__file__).parent / "data" / "schema-diff"
BASE = (DATA / "base.xml").read_text(encoding="utf-8")

Row = tuple[str, str, str | None, str | None]


def edit(text: str, *edits: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` replaced; ``old`` must occur exactly once (else the test is wrong)."""
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def schema(text: str) -> Schema:
    return parse_schema(text.encode("utf-8"))


def rows(changes: list[Change]) -> list[Row]:
    return [(c.rule, c.place, c.old, c.new) for c in changes]


def diff(new_text: str, old_text: str = BASE) -> list[Change]:
    return diff_schemas(schema(old_text), schema(new_text))


# -------------------------------------------------------------------------------- one case per rule

UPLOADTOKEN_SERVICE = """    <service id="uploadtoken" name="uploadToken" description="">
      <action name="get" description="" enableInMultiRequest="1" sessionRequired="always">
        <param name="uploadTokenId" type="string" optional="0" description=""/>
        <result type="KalturaUploadToken"/>
      </action>
    </service>
"""
UPDATE_STATUS = """      <action name="updateStatus" description="" enableInMultiRequest="1" sessionRequired="always">
        <param name="entryId" type="string" optional="0" description=""/>
        <param name="status" type="string" enumType="KalturaEntryStatus" optional="0" description=""/>
      </action>
"""
MEDIA_ADD_ENTRY = '<param name="entry" type="KalturaMediaEntry" optional="0" description=""/>'
VERSION = '<param name="version" type="int" optional="1" default="-1" description=""/>'
GET = '<action name="get" description="Get base entry by ID." enableInMultiRequest="1"'
PING = '<action name="ping" description="" enableInMultiRequest="1" sessionRequired="none">'
BASE_ENTRY_LIST_CLOSE = """        <result type="KalturaBaseEntryListResponse"/>
      </action>
"""
UPLOAD_TOKEN_CLASS = """    <class name="KalturaUploadToken" description="">
      <property name="id" type="string" readOnly="1" insertOnly="0" writeOnly="0" multiLingual="0" description=""/>
    </class>
"""
NAME = '<property name="name" type="string" readOnly="0" insertOnly="0" writeOnly="0" multiLingual="0" description="Entry name"/>'
DURATION = '<property name="duration" type="int" readOnly="1" insertOnly="0" writeOnly="0" multiLingual="0" description=""/>'
MEDIA_TYPE_PROP = '<property name="mediaType" type="int" enumType="KalturaMediaType" readOnly="0"'
MEDIA_TYPE_ENUM = """    <enum name="KalturaMediaType" enumType="int">
      <const name="VIDEO" value="1"/>
      <const name="AUDIO" value="5"/>
    </enum>
"""
MISSING_KS = (
    '    <error name="MISSING_KS" code="MISSING_KS" message="Missing KS, session not established"/>\n'
)

CASES: list[tuple[str, tuple[tuple[str, str], ...], list[Row]]] = [
    ("service-removed", ((UPLOADTOKEN_SERVICE, ""),), [("service-removed", "uploadToken", "1 action", None)]),
    (
        "service-added",
        (
            (
                "  </services>",
                '    <service id="flavorasset" name="flavorAsset" description="">\n'
                '      <action name="get" description="" enableInMultiRequest="1" sessionRequired="always">\n'
                '        <param name="id" type="string" optional="0" description=""/>\n'
                '        <result type="string"/>\n'
                "      </action>\n"
                "    </service>\n  </services>",
            ),
        ),
        [("service-added", "flavorAsset", None, "1 action")],
    ),
    (
        "action-removed",
        ((UPDATE_STATUS, ""),),
        [
            (
                "action-removed",
                "media.updateStatus",
                "(entryId: string, status: string (KalturaEntryStatus)) -> void",
                None,
            )
        ],
    ),
    (
        "action-added",
        (
            (
                BASE_ENTRY_LIST_CLOSE,
                BASE_ENTRY_LIST_CLOSE
                + '      <action name="count" description="" enableInMultiRequest="1" sessionRequired="always">\n'
                '        <param name="filter" type="KalturaBaseEntryFilter" optional="1" default="null" description=""/>\n'
                '        <result type="int"/>\n'
                "      </action>\n",
            ),
        ),
        [("action-added", "baseEntry.count", None, "(filter: KalturaBaseEntryFilter?) -> int")],
    ),
    (
        "action-deprecated",
        ((GET, GET.replace('<action name="get"', '<action name="get" deprecated="1"')),),
        [("action-deprecated", "baseEntry.get", "supported", "deprecated")],
    ),
    (
        "session-became-required",
        ((PING, PING.replace('"none"', '"always"')),),
        [("session-became-required", "system.ping", "sessionRequired=none", "sessionRequired=always")],
    ),
    (
        "result-type-changed",
        (
            ('<result type="KalturaMediaEntry"/>', '<result type="KalturaBaseEntry"/>'),
            (
                '<result type="KalturaBaseEntryListResponse"/>',
                '<result type="array" arrayType="KalturaBaseEntry"/>',
            ),
        ),
        [
            (
                "result-type-changed",
                "baseEntry.list",
                "KalturaBaseEntryListResponse",
                "array of KalturaBaseEntry",
            ),
            ("result-type-changed", "media.add", "KalturaMediaEntry", "KalturaBaseEntry"),
        ],
    ),
    (
        "parameter-removed",
        ((VERSION, ""),),
        [("parameter-removed", "baseEntry.get.version", "int, optional, default -1", None)],
    ),
    (
        "parameter-added-required",
        (
            (
                MEDIA_ADD_ENTRY,
                MEDIA_ADD_ENTRY + '<param name="flavorId" type="string" optional="0" description=""/>',
            ),
        ),
        [("parameter-added-required", "media.add.flavorId", None, "string, required")],
    ),
    (
        "parameter-added-optional",
        (
            (
                MEDIA_ADD_ENTRY,
                MEDIA_ADD_ENTRY
                + '<param name="type" type="int" enumType="KalturaMediaType" optional="1" default="null" description=""/>',
            ),
        ),
        [
            (
                "parameter-added-optional",
                "media.add.type",
                None,
                "int (KalturaMediaType), optional, default null",
            )
        ],
    ),
    (
        "parameter-became-required",
        (
            (
                'type="KalturaBaseEntryFilter" optional="1" default="null"',
                'type="KalturaBaseEntryFilter" optional="0"',
            ),
        ),
        [("parameter-became-required", "baseEntry.list.filter", "optional, default null", "required")],
    ),
    (
        "parameter-became-optional",
        (
            (
                'name="uploadTokenId" type="string" optional="0"',
                'name="uploadTokenId" type="string" optional="1"',
            ),
        ),
        [("parameter-became-optional", "uploadToken.get.uploadTokenId", "required", "optional")],
    ),
    (
        "parameter-type-changed",
        (
            (
                '<param name="status" type="string" enumType="KalturaEntryStatus"',
                '<param name="status" type="int" enumType="KalturaMediaType"',
            ),
            (
                '<param name="uploadTokenId" type="string"',
                '<param name="uploadTokenId" type="array" arrayType="KalturaUploadToken"',
            ),
        ),
        [
            (
                "parameter-type-changed",
                "media.updateStatus.status",
                "string (KalturaEntryStatus)",
                "int (KalturaMediaType)",
            ),
            (
                "parameter-type-changed",
                "uploadToken.get.uploadTokenId",
                "string",
                "array of KalturaUploadToken",
            ),
        ],
    ),
    (
        "parameter-default-changed",
        ((VERSION, VERSION.replace('default="-1"', 'default="0"')),),
        [("parameter-default-changed", "baseEntry.get.version", "default -1", "default 0")],
    ),
    ("class-removed", ((UPLOAD_TOKEN_CLASS, ""),), [("class-removed", "KalturaUploadToken", "class", None)]),
    (
        "class-added",
        (
            (
                "  </classes>",
                '    <class name="KalturaFlavorAsset" base="KalturaObjectBase" description=""/>\n  </classes>',
            ),
        ),
        [("class-added", "KalturaFlavorAsset", None, "class extends KalturaObjectBase")],
    ),
    (
        "class-base-changed",
        (
            (
                '<class name="KalturaBaseEntryFilter" description="">',
                '<class name="KalturaBaseEntryFilter" base="KalturaObjectBase" description="">',
            ),
        ),
        [("class-base-changed", "KalturaBaseEntryFilter", "class", "class extends KalturaObjectBase")],
    ),
    ("property-removed", ((NAME, ""),), [("property-removed", "KalturaBaseEntry.name", "string", None)]),
    (
        "property-added",
        ((DURATION, DURATION + '<property name="tags" type="string" readOnly="0" description=""/>'),),
        [("property-added", "KalturaPlayableEntry.tags", None, "string")],
    ),
    (
        "property-type-changed",
        ((DURATION, DURATION.replace('type="int"', 'type="float"')),),
        [("property-type-changed", "KalturaPlayableEntry.duration", "int", "float")],
    ),
    (
        "property-became-read-only",
        ((MEDIA_TYPE_PROP, MEDIA_TYPE_PROP.replace('readOnly="0"', 'readOnly="1"')),),
        [("property-became-read-only", "KalturaMediaEntry.mediaType", "writable", "read-only")],
    ),
    ("enum-removed", ((MEDIA_TYPE_ENUM, ""),), [("enum-removed", "KalturaMediaType", "int enum", None)]),
    (
        "enum-added",
        (
            (
                "  </enums>",
                '    <enum name="KalturaFlavorAssetStatus" enumType="int">\n      <const name="READY" value="2"/>\n    </enum>\n  </enums>',
            ),
        ),
        [("enum-added", "KalturaFlavorAssetStatus", None, "int enum")],
    ),
    (
        "enum-type-changed",
        (
            (
                '<enum name="KalturaEntryStatus" enumType="string">',
                '<enum name="KalturaEntryStatus" enumType="int">',
            ),
        ),
        [("enum-type-changed", "KalturaEntryStatus", "string", "int")],
    ),
    (
        "enum-value-removed",
        (('      <const name="AUDIO" value="5"/>\n', ""),),
        [("enum-value-removed", "KalturaMediaType.AUDIO", "5", None)],
    ),
    (
        "enum-value-changed",
        (('<const name="DELETED" value="3"/>', '<const name="DELETED" value="4"/>'),),
        [("enum-value-changed", "KalturaEntryStatus.DELETED", "3", "4")],
    ),
    (
        "enum-value-added",
        (
            (
                '<const name="AUDIO" value="5"/>',
                '<const name="AUDIO" value="5"/><const name="IMAGE" value="2"/>',
            ),
        ),
        [("enum-value-added", "KalturaMediaType.IMAGE", None, "2")],
    ),
    (
        "error-code-removed",
        ((MISSING_KS, ""),),
        [("error-code-removed", "MISSING_KS", "Missing KS, session not established", None)],
    ),
    (
        "error-code-added",
        (
            (
                MISSING_KS,
                MISSING_KS
                + '    <error name="INVALID_KS" code="INVALID_KS" message="Invalid KS &quot;@KS@&quot;"/>\n',
            ),
        ),
        [("error-code-added", "INVALID_KS", None, 'Invalid KS "@KS@"')],
    ),
]

SEVERITY = {
    "service-removed": "breaking",
    "action-removed": "breaking",
    "session-became-required": "breaking",
    "result-type-changed": "breaking",
    "parameter-removed": "breaking",
    "parameter-added-required": "breaking",
    "parameter-became-required": "breaking",
    "parameter-type-changed": "breaking",
    "class-removed": "breaking",
    "property-removed": "breaking",
    "property-type-changed": "breaking",
    "property-became-read-only": "breaking",
    "enum-removed": "breaking",
    "enum-type-changed": "breaking",
    "enum-value-removed": "breaking",
    "enum-value-changed": "breaking",
    "error-code-removed": "breaking",
    "action-deprecated": "warning",
    "parameter-default-changed": "warning",
    "class-base-changed": "warning",
    "stale-ignore": "warning",
    "service-added": "info",
    "action-added": "info",
    "parameter-added-optional": "info",
    "parameter-became-optional": "info",
    "class-added": "info",
    "property-added": "info",
    "enum-added": "info",
    "enum-value-added": "info",
    "error-code-added": "info",
}


@pytest.mark.parametrize(("rule", "edits", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_rule_gives_its_exact_rows(
    rule: str, edits: tuple[tuple[str, str], ...], expected: list[Row]
) -> None:
    changes = diff(edit(BASE, *edits))
    assert rows(changes) == expected
    assert {c.severity for c in changes} == {SEVERITY[rule]}


def test_every_rule_has_a_case_and_a_documented_severity() -> None:
    covered = {rule for rule, _, _ in CASES} | {"stale-ignore"}  # stale-ignore: the ignore tests below
    assert covered == set(RULES)
    assert {rule: r.severity for rule, r in RULES.items()} == SEVERITY
    doc = (Path(__file__).parents[1] / "docs" / "schema-diff.md").read_text(encoding="utf-8")
    for rule, severity in SEVERITY.items():
        assert f"| `{rule}` | {severity} |" in doc, rule


def test_the_same_schema_has_no_change() -> None:
    assert diff(BASE) == []


def test_breaking_rows_come_first_then_by_place() -> None:
    changes = diff(edit(BASE, (MISSING_KS, ""), (VERSION, VERSION.replace('"-1"', '"0"')), (NAME, "")))
    assert [(c.severity, c.place) for c in changes] == [
        ("breaking", "KalturaBaseEntry.name"),
        ("breaking", "MISSING_KS"),
        ("warning", "baseEntry.get.version"),
    ]


def test_action_names_compare_case_insensitively_as_kaltura_dispatches_them() -> None:
    renamed = edit(BASE, ('<action name="updateStatus"', '<action name="UPDATESTATUS"'))
    assert diff(renamed) == []


def test_a_service_named_like_another_is_placed_by_its_id() -> None:
    plugin = (
        '    <service id="metadata_media" name="media" description="" plugin="metadata">\n'
        '      <action name="get" description="" enableInMultiRequest="1" sessionRequired="always">\n'
        '        <result type="string"/>\n'
        "      </action>\n"
        "    </service>\n  </services>"
    )
    assert rows(diff(edit(BASE, ("  </services>", plugin)))) == [
        ("service-added", "metadata_media", None, "1 action")
    ]


# ------------------------------------------------------------------------------ inherited properties


def test_a_property_removed_from_a_base_is_one_row_listing_the_subclasses() -> None:
    changes = diff(edit(BASE, (NAME, "")))
    assert [(c.rule, c.place, c.affected) for c in changes] == [
        ("property-removed", "KalturaBaseEntry.name", ("KalturaMediaEntry", "KalturaPlayableEntry"))
    ]


def test_a_type_change_in_a_base_is_inherited_by_its_subclasses() -> None:
    changes = diff(edit(BASE, (DURATION, DURATION.replace('type="int"', 'type="float"'))))
    assert [(c.place, c.affected) for c in changes] == [
        ("KalturaPlayableEntry.duration", ("KalturaMediaEntry",))
    ]


def test_a_class_whose_base_changed_reports_what_it_no_longer_inherits() -> None:
    new = edit(BASE, ('base="KalturaPlayableEntry"', 'base="KalturaBaseEntry"'))
    assert [(*row, c.affected) for row, c in zip(rows(diff(new)), diff(new), strict=True)] == [
        ("property-removed", "KalturaMediaEntry.duration", "int", None, ()),
        (
            "class-base-changed",
            "KalturaMediaEntry",
            "class extends KalturaPlayableEntry",
            "class extends KalturaBaseEntry",
            (),
        ),
    ]


def test_a_property_moved_up_to_a_base_is_only_new_on_the_base() -> None:
    new = edit(BASE, (DURATION, ""), (NAME, NAME + DURATION))
    changes = diff(new)
    assert [(*row, c.affected) for row, c in zip(rows(changes), changes, strict=True)] == [
        ("property-added", "KalturaBaseEntry.duration", None, "int", ())
    ]


def test_a_subclass_that_redeclares_a_property_has_its_own_row() -> None:
    redeclared = '<property name="name" type="string" readOnly="0" description="Media name"/>'
    old = edit(BASE, (MEDIA_TYPE_PROP, redeclared + MEDIA_TYPE_PROP))
    new = edit(BASE, (NAME, ""))
    changes = diff(new, old)
    assert [(c.place, c.affected) for c in changes] == [
        ("KalturaBaseEntry.name", ("KalturaPlayableEntry",)),
        ("KalturaMediaEntry.name", ()),
    ]
    # it keeps its own declaration: only the base and the class between lose the property
    kept = edit(old, (NAME, ""))
    assert [(c.place, c.affected) for c in diff(kept, old)] == [
        ("KalturaBaseEntry.name", ("KalturaPlayableEntry",))
    ]


# ------------------------------------------------------------------------------------------ scope


def test_scope_keeps_the_in_scope_actions_and_what_they_reach() -> None:
    old = schema(BASE)
    new = schema(
        edit(
            BASE,
            (UPLOADTOKEN_SERVICE, ""),  # out of scope
            (
                UPLOAD_TOKEN_CLASS,
                UPLOAD_TOKEN_CLASS.replace('type="string" readOnly="1"', 'type="int" readOnly="1"'),
            ),
            (UPDATE_STATUS, ""),  # in scope
            (NAME, ""),  # KalturaBaseEntry: the base of KalturaMediaEntry, which media.add takes
            ('      <const name="AUDIO" value="5"/>\n', ""),  # KalturaMediaEntry.mediaType's enum
            (
                '<const name="DELETED" value="3"/>',
                "",
            ),  # KalturaEntryStatus: media.updateStatus's enum, in old
            (
                '<property name="idEqual" type="string"',
                '<property name="idEqual" type="int"',
            ),  # baseEntry only
            (MISSING_KS, ""),  # errors are kept
        )
    )
    everything = diff_schemas(old, new)
    assert len(everything) == 8
    scoped = restrict_to_scope(everything, old, new, Scope(include=("media.*",)))
    assert rows(scoped) == [
        ("property-removed", "KalturaBaseEntry.name", "string", None),
        ("enum-value-removed", "KalturaEntryStatus.DELETED", "3", None),
        ("enum-value-removed", "KalturaMediaType.AUDIO", "5", None),
        (
            "action-removed",
            "media.updateStatus",
            "(entryId: string, status: string (KalturaEntryStatus)) -> void",
            None,
        ),
        ("error-code-removed", "MISSING_KS", "Missing KS, session not established", None),
    ]
    by_id = restrict_to_scope(everything, old, new, Scope(include=("uploadtoken.*",)))
    assert [c.place for c in by_id] == ["KalturaUploadToken.id", "MISSING_KS", "uploadToken"]
    excluded = restrict_to_scope(
        everything, old, new, Scope(include=("media.*",), exclude=("media.updateStatus",))
    )
    assert "media.updateStatus" not in [c.place for c in excluded]


def test_a_scope_that_covers_nothing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="the scope leaves no action of either schema"):
        restrict_to_scope([], schema(BASE), schema(BASE), Scope(include=("nosuchservice.*",)))


# ------------------------------------------------------------------------------------- ignore file


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_ignore_entries_mark_rows_and_unmatched_entries_are_stale(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "accepted.toml",
        '[[ignore]]\nrule = "action-removed"\nplace = "MEDIA.updatestatus"\nreason = "no client calls it (OPS-12)"\n\n'
        '[[ignore]]\nrule = "property-removed"\nplace = "KalturaBaseEntry.*"\nreason = "renamed in 22.16"\n\n'
        '[[ignore]]\nrule = "class-removed"\nplace = "KalturaGone"\nreason = "removed long ago"\n',
    )
    entries = load_ignores(path)
    assert entries == (
        IgnoreEntry("action-removed", "MEDIA.updatestatus", "no client calls it (OPS-12)"),
        IgnoreEntry("property-removed", "KalturaBaseEntry.*", "renamed in 22.16"),
        IgnoreEntry("class-removed", "KalturaGone", "removed long ago"),
    )
    changes = apply_ignores(diff(edit(BASE, (UPDATE_STATUS, ""), (NAME, ""), (MISSING_KS, ""))), entries)
    assert [(c.rule, c.place, c.ignored, c.reason) for c in changes] == [
        ("error-code-removed", "MISSING_KS", False, None),
        ("stale-ignore", "KalturaGone", False, "removed long ago"),
        ("property-removed", "KalturaBaseEntry.name", True, "renamed in 22.16"),
        ("action-removed", "media.updateStatus", True, "no client calls it (OPS-12)"),
    ]
    stale = changes[1]
    assert (stale.severity, stale.old, stale.new) == ("warning", "class-removed", "matches no change")


def test_the_yaml_ignore_file_reads_the_same(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "accepted.yaml",
        "ignore:\n  - rule: action-removed\n    place: media.updateStatus\n    reason: >-\n      no client\n      calls it\n",
    )
    assert load_ignores(path) == (IgnoreEntry("action-removed", "media.updateStatus", "no client calls it"),)
    assert load_ignores(write(tmp_path, "empty.yml", "")) == ()


BAD_IGNORE_FILES = {
    "no-reason.toml": (
        "[[ignore]]\nrule = 'action-removed'\nplace = 'a.b'\n",
        "ignore entry 1: reason is missing or empty (say why the change is accepted)",
    ),
    "blank-reason.toml": (
        "[[ignore]]\nrule = 'action-removed'\nplace = 'a.b'\nreason = '  '\n",
        "ignore entry 1: reason is missing or empty",
    ),
    "no-place.yaml": (
        "ignore:\n  - rule: action-removed\n    reason: fine\n",
        "ignore entry 1: place is missing or empty",
    ),
    "typo-key.toml": (
        "[[ignore]]\nrule = 'action-removed'\nplace = 'a.b'\nreson = 'x'\n",
        "ignore entry 1: unknown key 'reson'; did you mean 'reason'?",
    ),
    "typo-rule.toml": (
        "[[ignore]]\nrule = 'action-remove'\nplace = 'a.b'\nreason = 'x'\n",
        "ignore entry 1: unknown rule 'action-remove'; did you mean 'action-removed'?",
    ),
    "stale-rule.toml": (
        "[[ignore]]\nrule = 'stale-ignore'\nplace = 'a.b'\nreason = 'x'\n",
        "ignore entry 1: unknown rule 'stale-ignore'",
    ),
    "not-a-list.yaml": (
        "ignore: action-removed\n",
        "'ignore' must be a list of entries (rule, place, reason)",
    ),
    "other-key.toml": (
        "[accept]\nrule = 'x'\n",
        "unknown key 'accept' (only 'ignore' entries: rule, place, reason)",
    ),
    "a-list.yaml": ("- rule: x\n", "expected an 'ignore' list of entries (rule, place, reason)"),
    "entry-not-table.yaml": (
        "ignore:\n  - action-removed\n",
        "ignore entry 1: expected a table with rule, place and reason",
    ),
    "bad.toml": ("[[ignore]\n", "not valid TOML"),
    "bad.yaml": ("ignore: [\n", "not valid YAML"),
    "ignore.json": ("{}", "give a .toml, .yaml or .yml file"),
}


@pytest.mark.parametrize("name", sorted(BAD_IGNORE_FILES))
def test_a_bad_ignore_file_is_one_line_naming_the_problem(tmp_path: Path, name: str) -> None:
    text, expected = BAD_IGNORE_FILES[name]
    with pytest.raises(ConfigError) as raised:
        load_ignores(write(tmp_path, name, text))
    assert expected in raised.value.message
    assert "\n" not in raised.value.message


def test_a_missing_ignore_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_ignores(tmp_path / "nope.toml")


# ------------------------------------------------------------------------------------------ outputs


def outcome(changes: list[Change], fail_on: str = "breaking") -> DiffOutcome:
    return DiffOutcome(
        DiffSide("old.xml", "22.14.0"), DiffSide("new.xml", "22.15.0"), changes, fail_on=fail_on
    )


SAMPLE = [
    Change("action-removed", "media.updateStatus", old="(entryId: string) -> void"),
    Change("property-removed", "KalturaBaseEntry.name", old="string", affected=("A", "B", "C", "D")),
    Change("action-deprecated", "baseEntry.get", old="supported", new="deprecated"),
    Change("action-added", "baseEntry.count", new="() -> int"),
    Change("class-removed", "KalturaGone", old="class", ignored=True, reason="accepted"),
]


@pytest.mark.parametrize(
    ("fail_on", "failing", "exit_code"),
    [("breaking", 2, 1), ("warning", 3, 1), ("info", 4, 1), ("never", 0, 0)],
)
def test_fail_on_picks_the_severity_that_fails(fail_on: str, failing: int, exit_code: int) -> None:
    result = outcome(SAMPLE, fail_on)
    assert len(result.failing()) == failing
    assert result.exit_code == exit_code
    assert result.counts() == {"breaking": 2, "warning": 1, "info": 1, "ignored": 1, "total": 5}


def test_only_ignored_breaking_changes_pass() -> None:
    assert outcome([SAMPLE[-1], SAMPLE[3]]).exit_code == 0


def test_the_table_has_one_line_per_row_and_the_summary() -> None:
    text = render_table(outcome(SAMPLE))
    lines = text.splitlines()
    assert lines[0].split() == ["SEVERITY", "RULE", "PLACE", "OLD", "NEW"]
    assert lines[1].split() == [
        "breaking",
        "action-removed",
        "media.updateStatus",
        "(entryId:",
        "string)",
        "->",
        "void",
        "-",
    ]
    assert lines[2].endswith("inherited by A, B, C and 1 more")
    assert lines[5].split()[:3] == ["ignored", "class-removed", "KalturaGone"]
    assert lines[5].endswith("ignored: accepted")
    assert lines[6] == (
        "schema diff: API 22.14.0 (old.xml) -> API 22.15.0 (new.xml): 2 breaking, 1 warning, 1 info, "
        "1 ignored; fail on breaking: FAIL"
    )
    assert render_table(outcome([])).splitlines()[0] == "no changes"


def test_json_has_every_row_with_its_verdict() -> None:
    data = json.loads(render_json(outcome(SAMPLE)))
    assert data["verdict"] == "FAIL" and data["ok"] is False
    assert data["old"] == {"source": "old.xml", "api_version": "22.14.0"}
    assert data["changes"][1] == {
        "rule": "property-removed",
        "severity": "breaking",
        "breaking": True,
        "place": "KalturaBaseEntry.name",
        "old": "string",
        "new": None,
        "affected": ["A", "B", "C", "D"],
        "ignored": False,
        "reason": None,
        "failing": True,
    }
    assert [c["failing"] for c in data["changes"]] == [True, True, False, False, False]


def test_junit_has_a_failing_case_per_failing_row_and_skips_the_ignored() -> None:
    suite = ET.fromstring(render_junit(outcome(SAMPLE)))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "2", "1")
    cases = [(c.get("classname"), c.get("name"), [child.tag for child in c]) for c in suite.iter("testcase")]
    assert cases == [
        ("schema_diff.action-removed", "media.updateStatus", ["failure"]),
        ("schema_diff.property-removed", "KalturaBaseEntry.name", ["failure"]),
        ("schema_diff.class-removed", "KalturaGone", ["skipped"]),
    ]
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert (
        failure.get("message") == "breaking action-removed media.updateStatus: (entryId: string) -> void -> -"
    )


def test_junit_has_one_passing_case_when_nothing_fails() -> None:
    suite = ET.fromstring(render_junit(outcome(SAMPLE[2:4])))
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")
    case = suite.find("testcase")
    assert case is not None and (case.get("name"), list(case)) == ("no breaking change", [])


def test_the_report_section_groups_the_rows() -> None:
    section = schema_diff_section(outcome(SAMPLE))
    assert section["ok"] is False
    assert [c["place"] for c in section["attention"]] == [
        "media.updateStatus",
        "KalturaBaseEntry.name",
        "baseEntry.get",
    ]
    assert [c["place"] for c in section["ignored"]] == ["KalturaGone"]
    assert [c["place"] for c in section["others"]] == ["baseEntry.count"]
    assert section["others_left_out"] == 0


# ------------------------------------------------------------------------------- the real schema


def block_edit(text: str, starts: list[str], end: str, old: str, new: str) -> str:
    """Replace ``old`` (exactly once) inside the block that begins at the nested ``starts`` markers and
    ends at the next ``end``."""
    at = 0
    for start in starts:
        at = text.index(start, at)
    stop = text.index(end, at)
    block = text[at:stop]
    assert block.count(old) == 1, f"{old!r} occurs {block.count(old)} times in the block"
    return text[:at] + block.replace(old, new) + text[stop:]


@pytest.fixture(scope="module")
def real_text() -> str:
    return real_schema_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def real(real_text: str) -> Schema:
    return schema(real_text)


def test_the_real_schema_has_no_change_from_itself(real: Schema, real_text: str) -> None:
    assert diff_schemas(real, schema(real_text)) == []


def test_changes_to_the_real_schema_give_exact_rows(real: Schema, real_text: str) -> None:
    tags = '<property name="tags" type="string" readOnly="0" insertOnly="0" writeOnly="0" multiLingual="1" requiresPermissions="update" description="Entry tags"/>'
    new_text = block_edit(real_text, ['<class name="KalturaBaseEntry" '], "</class>", tags, "")
    new_text = block_edit(
        new_text,
        ['<service id="media" ', '<action name="list" '],
        "</action>",
        'type="KalturaMediaEntryFilter" optional="1" default="null"',
        'type="KalturaMediaEntryFilter" optional="0"',
    )
    new_text = block_edit(
        new_text,
        ['<enum name="KalturaEntryStatus" '],
        "</enum>",
        '<const name="INFECTED" value="virusScan.Infected"/>',
        "",
    )
    new_text = block_edit(new_text, ["<errors>"], "</errors>", MISSING_KS.strip(), "")
    new_text = block_edit(
        new_text,
        ['<service id="system" '],
        "</service>",
        '<action name="ping" ',
        '<action name="pingTwice" description="" enableInMultiRequest="1" sessionRequired="none">'
        '<param name="times" type="int" optional="1" default="2" description=""/><result type="bool"/></action>'
        '<action name="ping" ',
    )
    new = schema(new_text)
    changes = diff_schemas(real, new)
    assert [(*row, c.severity) for row, c in zip(rows(changes), changes, strict=True)] == [
        ("property-removed", "KalturaBaseEntry.tags", "string", None, "breaking"),
        ("enum-value-removed", "KalturaEntryStatus.INFECTED", "virusScan.Infected", None, "breaking"),
        ("parameter-became-required", "media.list.filter", "optional, default null", "required", "breaking"),
        ("error-code-removed", "MISSING_KS", "Missing KS, session not established", None, "breaking"),
        ("action-added", "system.pingTwice", None, "(times: int?) -> bool", "info"),
    ]
    # every subclass that does not declare tags itself lost it with KalturaBaseEntry, and is listed there
    inheriting = sorted(
        name
        for name in real.classes
        if name != "KalturaBaseEntry"
        and real.is_subclass(name, "KalturaBaseEntry")
        and next(c.name for c in real.lineage(name) if any(p.name == "tags" for p in c.props))
        == "KalturaBaseEntry"
    )
    assert "KalturaMediaEntry" in inheriting and len(inheriting) > 5
    assert changes[0].affected == tuple(inheriting)


def test_scope_on_the_real_schema_keeps_what_media_reaches(real: Schema, real_text: str) -> None:
    new_text = block_edit(
        real_text,
        ['<service id="system" '],
        "</service>",
        '<action name="ping" ',
        '<action name="ping" deprecated="1" ',
    )
    new_text = block_edit(
        new_text,
        ['<enum name="KalturaEntryStatus" '],
        "</enum>",
        '<const name="INFECTED" value="virusScan.Infected"/>',
        "",
    )
    new = schema(new_text)
    changes = diff_schemas(real, new)
    assert [c.place for c in changes] == ["KalturaEntryStatus.INFECTED", "system.ping"]
    scope = Scope(include=("media.*",))
    assert "KalturaEntryStatus" in reachable(real, [s for s in scope.apply(real).services.values()])[1]
    assert [c.place for c in restrict_to_scope(changes, real, new, scope)] == ["KalturaEntryStatus.INFECTED"]

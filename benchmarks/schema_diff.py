"""How long ``ksentinel schema diff`` takes on a real schema (not in CI); the goal is under 2 s wall.

OLD is the real OVP 22.15.0 schema (``$KSENTINEL_KALTURA_SCHEMA`` or ``shared/data/`` beside the
repository, as the tests find it). NEW is, by default, a changed copy of it, made by this documented,
deterministic transformation of the XML (so that every kind of row is produced, thousands in all):

* every 10th action (in document order) removed, every 11th given a new optional ``benchmarkFlag``,
  every 7th has its first optional parameter made mandatory, every 15th its result type changed;
* every 9th class loses its first property (so subclasses inherit the removal), every 13th has its
  first property's type flipped (``string`` <-> ``int``), every 17th is removed;
* every 5th enum loses its last constant, every 6th gains one;
* every 20th error code removed; ``apiVersion`` becomes ``22.16.0-bench``.

``--new FILE`` diffs against another real version instead (e.g. an older ``KalturaClient.xml``, apiVersion
3.1.1, from the kaltura/clients-generator history; see shared/data/SOURCES.md); ``--old FILE`` replaces
the real 22.15.0. Prints the in-process time (both parses and the diff) and the wall time of the whole
command in a subprocess (start-up, reading, parsing, diffing, writing JSON), median of ``--repeat``.

    .venv/bin/python benchmarks/schema_diff.py [--old FILE] [--new FILE] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import defusedxml.ElementTree as SafeET

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "kaltura-ovp-api-schema-22.15.0.xml"
GOAL_SECONDS = 2.0


def transformed(source: Path, out: Path) -> Path:
    """``out``: the schema of ``source`` changed as the module docstring says."""
    root = SafeET.fromstring(source.read_bytes(), forbid_dtd=True)
    root.set("apiVersion", "22.16.0-bench")
    services = root.find("services")
    assert services is not None
    index = 0
    for service in services.findall("service"):
        for action in service.findall("action"):
            index += 1
            if index % 10 == 0:
                service.remove(action)
                continue
            if index % 11 == 0:
                ET.SubElement(
                    action, "param", name="benchmarkFlag", type="bool", optional="1", default="false"
                )
            if index % 7 == 0:
                optional = [p for p in action.findall("param") if p.get("optional") == "1"]
                if optional:
                    optional[0].set("optional", "0")
                    optional[0].attrib.pop("default", None)
            result = action.find("result")
            if index % 15 == 0 and result is not None:
                result.set("type", "string")
                result.attrib.pop("arrayType", None)
    classes = root.find("classes")
    if classes is not None:
        for number, cls in enumerate(classes.findall("class"), start=1):
            props = cls.findall("property")
            if number % 17 == 0:
                classes.remove(cls)
            elif number % 9 == 0 and props:
                cls.remove(props[0])
            elif number % 13 == 0 and props:
                props[0].set("type", "int" if props[0].get("type") == "string" else "string")
    enums = root.find("enums")
    if enums is not None:
        for number, enum in enumerate(enums.findall("enum"), start=1):
            consts = enum.findall("const")
            if number % 5 == 0 and consts:
                enum.remove(consts[-1])
            if number % 6 == 0:
                ET.SubElement(enum, "const", name="BENCHMARK", value="9999")
    errors = root.find("errors")
    if errors is not None:
        for number, error in enumerate(errors.findall("error"), start=1):
            if number % 20 == 0:
                errors.remove(error)
    out.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return out


def in_process(old: Path, new: Path, repeat: int) -> tuple[float, Counter[str]]:
    sys.path.insert(0, str(REPO / "src"))
    from ksentinel.schema.diff import diff_schemas
    from ksentinel.schema.xml import parse_schema

    times = []
    rows: Counter[str] = Counter()
    for _ in range(repeat):
        started = time.perf_counter()
        changes = diff_schemas(parse_schema(old.read_bytes()), parse_schema(new.read_bytes()))
        times.append(time.perf_counter() - started)
        rows = Counter(change.severity for change in changes)
    return statistics.median(times), rows


def whole_command(old: Path, new: Path, repeat: int, tmp: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    command = [sys.executable, "-m", "ksentinel.cli", "schema", "diff", str(old), str(new)]
    command += ["--format", "json", "--output", str(tmp / "diff.json"), "--fail-on", "never"]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp
        )
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"schema diff exited {proc.returncode}: {proc.stderr.strip()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="OLD schema [default: the real 22.15.0]")
    parser.add_argument("--new", type=Path, help="NEW schema [default: OLD changed as documented]")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    old = args.old or Path(os.environ.get("KSENTINEL_KALTURA_SCHEMA") or REAL)
    if not old.is_file():
        raise SystemExit(f"no schema at {old} (set KSENTINEL_KALTURA_SCHEMA or give --old FILE)")
    with tempfile.TemporaryDirectory(prefix="ksentinel-bench-") as folder:
        tmp = Path(folder)
        new = args.new or transformed(old, tmp / "changed.xml")
        seconds, rows = in_process(old, new, args.repeat)
        wall = whole_command(old, new, args.repeat, tmp)
    print(f"OLD {old} ({old.stat().st_size:,} bytes)")
    print(f"NEW {args.new or 'OLD transformed (see the docstring)'}")
    print(f"rows: {sum(rows.values())} ({', '.join(f'{n} {s}' for s, n in sorted(rows.items()))})")
    print(f"in process (parse both + diff): {seconds:.3f} s median of {args.repeat}")
    verdict = "met" if wall < GOAL_SECONDS else "MISSED"
    print(
        f"whole command (subprocess, --format json): {wall:.3f} s wall median of {args.repeat}; goal < {GOAL_SECONDS:.0f} s: {verdict}"
    )


if __name__ == "__main__":
    main()

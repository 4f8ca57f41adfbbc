"""Where ksentinel keeps its own small copy of what a library does, the copy agrees with the library.

docs/ARCHITECTURE.md ("Hand-written where a library serves") says why each copy stays; these tests
hold each one to the library it stands in for. Locust runs in a child process (its import
monkey-patches the process it is imported in).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

from python_multipart.multipart import parse_options_header

from ksentinel.kaltura.wire import encode_multipart
from ksentinel.load.summary import percentile


def test_percentile_is_locusts() -> None:
    rng = random.Random(7)
    histograms = [
        {
            rng.choice([1, 2, 3, 10, 20, 50, 100, 250, 1000, 4000]): rng.randint(1, 50)
            for _ in range(rng.randint(1, 9))
        }
        for _ in range(200)
    ]
    histograms.append({})
    percents = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    ours = [[percentile(h, p) for p in percents] for h in histograms]
    code = textwrap.dedent(
        """
        import json, sys
        from locust.stats import calculate_response_time_percentile as locust_percentile
        histograms = [{int(k): v for k, v in h.items()} for h in json.load(sys.stdin)]
        percents = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
        print(json.dumps([[locust_percentile(h, sum(h.values()), p) for p in percents] for h in histograms]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(histograms),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ours


def test_multipart_bodies_parse_back() -> None:
    from python_multipart import MultipartParser

    name = 'clip "one"\\\n.mp4'
    content_type, body = encode_multipart(
        [("ks", "KS-VALUE"), ("uploadTokenId", "0_abc"), ("resume", "false")],
        [("fileData", (name, b"\x00\x01binary\r\n--not-a-boundary", "video/mp4"))],
    )
    kind, options = parse_options_header(content_type)
    assert kind == b"multipart/form-data"
    parts: list[dict[str, bytes]] = []
    current: dict[str, bytes] = {}

    def on_part_begin() -> None:
        current.clear()
        current["data"] = b""

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current["field"] = current.get("field", b"") + data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current[current.pop("field").decode().lower()] = current.get("value", b"") + data[start:end]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"] += data[start:end]

    def on_part_end() -> None:
        parts.append(dict(current))

    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    parser.write(body)
    parser.finalize()
    names = [parse_options_header(p["content-disposition"])[1][b"name"] for p in parts]
    assert names == [b"ks", b"uploadTokenId", b"resume", b"fileData"]
    assert [p["data"] for p in parts[:3]] == [b"KS-VALUE", b"0_abc", b"false"]
    assert parts[3]["data"] == b"\x00\x01binary\r\n--not-a-boundary"
    assert parts[3]["content-type"] == b"video/mp4"
    filename = parse_options_header(parts[3]["content-disposition"])[1][b"filename"]
    assert b"\n" not in filename and b'"' not in filename  # quoted, never able to break the header

"""``decode_xml`` refuses a DTD or entity declaration in any encoding, and still reads plain answers."""

from __future__ import annotations

import pytest

from ksentinel.errors import KalturaApiError
from ksentinel.kaltura.wire import BAD_RESPONSE, FORMAT_XML, decode_response, decode_xml

REFUSED = "XML with a DTD or entity declaration refused"

# a small billion-laughs: &c; expands to 1,000 "lol"s
LAUGHS = (
    '<?xml version="1.0" encoding="{encoding}"?>\n'
    "<!DOCTYPE xml [\n"
    ' <!ENTITY a "lol">\n'
    ' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
    ' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n'
    "]>\n"
    "<xml><result><objectType>KalturaBaseEntry</objectType><name>&c;</name></result>"
    "<executionTime>0.01</executionTime></xml>"
)
# only a DTD, no entity
DOCTYPE_ONLY = (
    '<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE xml>\n'
    "<xml><result><objectType>KalturaBaseEntry</objectType><name>x</name></result></xml>"
)
# an external entity (would read a local file if expanded)
EXTERNAL = (
    '<?xml version="1.0" encoding="{encoding}"?>\n'
    '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n'
    "<xml><result><objectType>KalturaBaseEntry</objectType><name>&x;</name></result></xml>"
)
PLAIN = (
    '<?xml version="1.0" encoding="{encoding}"?>\n'
    "<xml><result><objectType>KalturaBaseEntry</objectType><id>0_abc123de</id><name>Überall ☃</name>"
    "<tags>ksentinel</tags></result><executionTime>0.02</executionTime></xml>"
)

# (declared encoding, codec): UTF-16 with a BOM, UTF-16LE/BE declared without one, and UTF-8
ENCODINGS = [
    ("UTF-16", "utf-16"),
    ("UTF-16LE", "utf-16-le"),
    ("UTF-16BE", "utf-16-be"),
    ("UTF-8", "utf-8"),
]


def body(template: str, encoding: str, codec: str) -> bytes:
    return template.format(encoding=encoding).encode(codec)


@pytest.mark.parametrize("template", [LAUGHS, DOCTYPE_ONLY, EXTERNAL], ids=["laughs", "doctype", "external"])
@pytest.mark.parametrize(("encoding", "codec"), ENCODINGS, ids=[e for e, _ in ENCODINGS])
def test_dtd_and_entities_refused_in_every_encoding(template: str, encoding: str, codec: str) -> None:
    data = body(template, encoding, codec)
    assert b"<!DOCTYPE" not in data or codec == "utf-8"  # a byte pattern cannot see it in UTF-16
    with pytest.raises(KalturaApiError) as caught:
        decode_xml(data, http_status=200)
    error = caught.value
    assert error.code == BAD_RESPONSE
    assert error.message == REFUSED
    assert "\n" not in str(error) and "lol" not in str(error)
    with pytest.raises(KalturaApiError, match=REFUSED):  # the same through the response decoder
        decode_response(200, {}, data, format=FORMAT_XML)


@pytest.mark.parametrize(("encoding", "codec"), ENCODINGS, ids=[e for e, _ in ENCODINGS])
def test_plain_answer_decodes(encoding: str, codec: str) -> None:
    value, execution_time = decode_xml(body(PLAIN, encoding, codec))
    assert value == {
        "objectType": "KalturaBaseEntry",
        "id": "0_abc123de",
        "name": "Überall ☃",
        "tags": "ksentinel",
    }
    assert execution_time == pytest.approx(0.02)


def test_utf8_error_answer_still_raises_the_api_error() -> None:
    data = (
        b'<?xml version="1.0" encoding="utf-8"?><xml><result><error><objectType>KalturaAPIException'
        b'</objectType><code>ENTRY_ID_NOT_FOUND</code><message>Entry id "0_x" not found</message>'
        b"<args><item><objectType>KalturaApiExceptionArg</objectType><name>ENTRY_ID</name>"
        b"<value>0_x</value></item></args></error></result><executionTime>0</executionTime></xml>"
    )
    with pytest.raises(KalturaApiError) as caught:
        decode_xml(data)
    assert caught.value.code == "ENTRY_ID_NOT_FOUND" and caught.value.error_args == {"ENTRY_ID": "0_x"}


def test_not_xml_is_a_one_line_bad_response() -> None:
    with pytest.raises(KalturaApiError) as caught:
        decode_xml(b"<xml><result>\n<oops></xml>")
    assert caught.value.code == BAD_RESPONSE and "not XML" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(("encoding", "codec"), ENCODINGS, ids=[e for e, _ in ENCODINGS])
def test_schema_parser_refuses_declarations_in_every_encoding(encoding: str, codec: str) -> None:
    """The api_schema.php parser goes through defusedxml too: UTF-16 does not slip a DTD past it."""
    from ksentinel.schema.errors import SchemaError
    from ksentinel.schema.xml import parse_schema

    schema = (
        '<?xml version="1.0" encoding="{encoding}"?>\n'
        '<!DOCTYPE xml [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<xml apiVersion="&b;"><services/></xml>'
    )
    with pytest.raises(SchemaError, match="schema XML rejected") as caught:
        parse_schema(body(schema, encoding, codec))
    assert "\n" not in str(caught.value) and "lol" not in str(caught.value)

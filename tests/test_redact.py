"""The one redaction helper: secrets and KS values never survive it."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from ksentinel.errors import KalturaApiError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.redact import RedactingFilter, redact, redact_mapping, register_secret

SECRET = "5ecret0123456789abcdef"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "template",
    [
        "ks={ks}",
        "GET /api_v3/service/media/action/list/ks/{ks}/format/1",
        "url?ks={quoted}&format=1",
        '{{"ks": "{ks}"}}',
        'Invalid KS "{ks}"',
    ],
)
def test_ks_is_masked_wherever_it_appears(version: int, template: str) -> None:
    token = ks_lib.build(SECRET, 101, "user@example.com", 2, 600, "list:*", version=version)
    text = template.format(ks=token, quoted=quote(token, safe=""))
    cleaned = redact(text)
    assert token not in cleaned and quote(token, safe="") not in cleaned
    assert "KS*" in cleaned


def test_registered_secret_is_masked_and_fingerprint_is_stable() -> None:
    register_secret(SECRET)
    first, second = redact(f"secret={SECRET}"), redact(f"again {SECRET}!")
    assert SECRET not in first + second
    assert first.split("=")[1] == second.split()[1].rstrip("!")


def test_ordinary_text_is_untouched() -> None:
    text = "entry 0_abcdef12 listed 30 items in 0.12 s; sha256 " + "a" * 64
    assert redact(text) == text


def test_mapping_masks_sensitive_keys() -> None:
    safe = redact_mapping(
        {"ks": "whatever-value", "secret": "hunter22", "filter": {"nameLike": "x"}, "3:ks": "abcdefgh"}
    )
    assert safe["ks"] != "whatever-value" and safe["secret"] != "hunter22" and safe["3:ks"] != "abcdefgh"
    assert safe["filter"] == {"nameLike": "x"}


def test_exceptions_and_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    token = ks_lib.build_v2(SECRET, 101, "u", 2, 600)
    err = KalturaApiError("INVALID_KS", f'Invalid KS "{token}"', {"KSID": token})
    assert token not in str(err) and token not in repr(err)
    logger = logging.getLogger("ksentinel.test.redact")
    handler_filter = RedactingFilter()
    logger.addFilter(handler_filter)
    with caplog.at_level(logging.INFO, logger="ksentinel.test.redact"):
        logger.info("calling with ks=%s", token)
    logger.removeFilter(handler_filter)
    assert token not in caplog.text and "KS*" in caplog.text

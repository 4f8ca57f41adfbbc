"""Partners never see each other's objects; USER sessions see and change only their own."""

from __future__ import annotations

import os

import httpx

from tests.conftest import Reference
from tests.helpers import admin_ks, is_error, raw_call, upload_entry, user_ks


def test_other_partner_cannot_get_list_update_or_delete(reference: Reference, http: httpx.Client) -> None:
    owner = admin_ks(reference.p1, "owner")
    intruder = admin_ks(reference.p2, "intruder", privileges="list:*,edit:*")
    entry = upload_entry(http, reference.url, owner, os.urandom(1000), name="private to 101")
    entry_id = entry["id"]

    for service in ("baseEntry", "media"):
        _, got = raw_call(http, reference.url, service, "get", ks=intruder, entryId=entry_id)
        assert is_error(got, "ENTRY_ID_NOT_FOUND"), got
        _, updated = raw_call(
            http,
            reference.url,
            service,
            "update",
            ks=intruder,
            entryId=entry_id,
            **{
                "baseEntry" if service == "baseEntry" else "mediaEntry": {
                    "objectType": "KalturaMediaEntry",
                    "name": "pwned",
                }
            },
        )
        assert is_error(updated, "ENTRY_ID_NOT_FOUND"), updated
    for status in (None, "1,2,7"):
        filt = {"objectType": "KalturaBaseEntryFilter", "idIn": entry_id}
        if status:
            filt["statusIn"] = status
        _, listed = raw_call(http, reference.url, "baseEntry", "list", ks=intruder, filter=filt)
        assert listed["totalCount"] == 0 and listed.get("objects", []) == []
    _, count = raw_call(
        http,
        reference.url,
        "baseEntry",
        "count",
        ks=intruder,
        filter={"objectType": "KalturaBaseEntryFilter", "idEqual": entry_id},
    )
    assert count == 0
    _, deleted = raw_call(http, reference.url, "baseEntry", "delete", ks=intruder, entryId=entry_id)
    assert is_error(deleted, "ENTRY_ID_NOT_FOUND")

    _, still = raw_call(http, reference.url, "baseEntry", "get", ks=owner, entryId=entry_id)
    assert still["id"] == entry_id and still["name"] == "private to 101"
    raw_call(http, reference.url, "baseEntry", "delete", ks=owner, entryId=entry_id)


def test_other_partner_cannot_use_our_upload_tokens(reference: Reference, http: httpx.Client) -> None:
    _, token = raw_call(http, reference.url, "uploadToken", "add", ks=admin_ks(reference.p1))
    _, got = raw_call(
        http, reference.url, "uploadToken", "get", ks=admin_ks(reference.p2), uploadTokenId=token["id"]
    )
    assert is_error(got, "UPLOAD_TOKEN_NOT_FOUND")
    _, listed = raw_call(
        http,
        reference.url,
        "uploadToken",
        "list",
        ks=admin_ks(reference.p2),
        filter={"objectType": "KalturaUploadTokenFilter", "idEqual": token["id"]},
    )
    assert listed["totalCount"] == 0


def test_user_session_changes_only_its_own_entries(reference: Reference, http: httpx.Client) -> None:
    admin = admin_ks(reference.p1)
    _, theirs = raw_call(
        http,
        reference.url,
        "media",
        "add",
        ks=admin,
        entry={
            "objectType": "KalturaMediaEntry",
            "name": "admin's",
            "mediaType": 1,
            "userId": "someone-else",
        },
    )
    alice = user_ks(reference.p1, "alice")
    _, mine = raw_call(
        http,
        reference.url,
        "media",
        "add",
        ks=alice,
        entry={"objectType": "KalturaMediaEntry", "name": "alice's", "mediaType": 1},
    )
    assert mine["userId"] == "alice"

    _, denied = raw_call(
        http,
        reference.url,
        "media",
        "update",
        ks=alice,
        entryId=theirs["id"],
        mediaEntry={"objectType": "KalturaMediaEntry", "name": "x"},
    )
    assert is_error(denied, "INVALID_KS") and denied["args"]["ERR_DESC"] == "INVALID_TYPE"
    _, denied = raw_call(http, reference.url, "media", "delete", ks=alice, entryId=theirs["id"])
    assert is_error(denied, "INVALID_KS")
    _, allowed = raw_call(
        http,
        reference.url,
        "media",
        "update",
        ks=alice,
        entryId=mine["id"],
        mediaEntry={"objectType": "KalturaMediaEntry", "name": "renamed"},
    )
    assert allowed["name"] == "renamed"
    editor = user_ks(reference.p1, "bob", privileges=f"edit:{theirs['id']}")
    _, allowed = raw_call(
        http,
        reference.url,
        "media",
        "update",
        ks=editor,
        entryId=theirs["id"],
        mediaEntry={"objectType": "KalturaMediaEntry", "name": "edited"},
    )
    assert allowed["name"] == "edited"

    # a USER session without list:* lists only its own entries
    no_content = {"objectType": "KalturaMediaEntryFilter", "statusEqual": 7}
    _, listed = raw_call(
        http, reference.url, "media", "list", ks=alice, filter=no_content, pager={"pageSize": 500}
    )
    assert {o["userId"] for o in listed["objects"]} == {"alice"}
    _, listed_all = raw_call(
        http,
        reference.url,
        "media",
        "list",
        ks=user_ks(reference.p1, "alice", privileges="list:*"),
        filter=no_content,
        pager={"pageSize": 500},
    )
    assert "someone-else" in {o["userId"] for o in listed_all["objects"]}
    for entry in (theirs, mine):
        raw_call(http, reference.url, "media", "delete", ks=admin, entryId=entry["id"])


def test_anonymous_calls_are_forbidden_outside_the_no_session_role(
    reference: Reference, http: httpx.Client
) -> None:
    response, listed = raw_call(http, reference.url, "baseEntry", "list")
    assert is_error(listed, "SERVICE_FORBIDDEN") and listed["args"]["SERVICE"] == "baseentry->list"
    assert response.status_code == 200 and response.headers["X-Kaltura"] == "error-SERVICE_FORBIDDEN"
    _, pong = raw_call(http, reference.url, "system", "ping")
    assert pong is True
    _, got = raw_call(http, reference.url, "baseEntry", "get", entryId="0_whatever")
    assert is_error(got, "ENTRY_ID_NOT_FOUND")

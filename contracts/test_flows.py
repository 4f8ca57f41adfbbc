"""The catalogue's session, upload, list, delete and multirequest flows, end to end."""

from __future__ import annotations

import pytest

FLOWS = ("session", "upload", "list", "delete", "multirequest")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.ksentinel("flow", n)) for n in FLOWS])
def test_flow(name: str, run_contract_flow) -> None:
    result = run_contract_flow(name)
    if result.skipped:
        pytest.skip(result.skipped)
    problem = result.failure or result.error
    assert problem is None, f"{problem}"
    assert not result.cleanup_errors, f"clean-up failed: {result.cleanup_errors}"

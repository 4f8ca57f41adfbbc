"""The response cache: hits on repeated reads, fresh after writes, bypassed by nocache, never shared."""

from __future__ import annotations

import pytest


@pytest.mark.ksentinel("caching", "cache")
def test_cache_flow(run_contract_flow, ksentinel_credentials) -> None:
    result = run_contract_flow("cache")
    problem = result.failure or result.error
    assert problem is None, f"{problem}"


@pytest.mark.ksentinel("caching", "cache.partner_isolated")
def test_cache_partner_isolation_is_checked(ksentinel_credentials) -> None:
    """Says loudly when the cross-partner cache check could not run (it needs a peer partner)."""
    if not ksentinel_credentials.has_peer:
        pytest.skip("no peer partner: set KSENTINEL_PEER_PARTNER_ID and KSENTINEL_PEER_ADMIN_SECRET")

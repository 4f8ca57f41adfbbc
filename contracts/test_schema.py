"""Every in-scope action, fuzzed by schemathesis over the target's own schema (api_schema.php).

Each generated case is made safe first (destructive actions only ever touch objects this run
created; ``session.end`` only ends a throwaway KS), sent with the suite's ADMIN KS, and judged by
the Kaltura-aware checks of :mod:`ksentinel.contract.kaltura_checks`. schemathesis's own checks
judge HTTP status codes, which Kaltura does not use for errors, so only ours run. The profile sets
the phases and the number of examples; the deep profile adds stateful sequences through the
``add`` -> ``get``/``update``/``delete`` links.
"""

from __future__ import annotations

import pytest
import schemathesis

from ksentinel.contract.schemathesis_support import budget_for

schema = schemathesis.pytest.from_fixture("ksentinel_schema")


@schema.parametrize()
def test_action(case, ksentinel_fuzz) -> None:
    ksentinel_fuzz.run(case)


@pytest.mark.ksentinel("action", "stateful sequences")
def test_stateful(ksentinel_fuzz, ksentinel_profile) -> None:
    if not ksentinel_profile.stateful:
        pytest.skip(f"stateful sequences run in the deep profile (this run: {ksentinel_profile.name})")
    nothing_to_do = ksentinel_fuzz.run_stateful(budget_for(ksentinel_profile))
    if nothing_to_do:
        pytest.skip(nothing_to_do)

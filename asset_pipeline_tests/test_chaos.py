"""The chaos suite (asset_pipeline_testing/chaos.py; bench/chaos.py runs it at full size) at CI size:
runs killed with -9, PostgreSQL restarted mid-run, a provider failing 20% of requests and then down,
resumed through retry-failed; every invariant holds after every trial."""

from __future__ import annotations

import pytest

from asset_pipeline_testing.chaos import print_table, run


@pytest.mark.timeout(900)
def test_chaos_at_ci_size() -> None:
    outcomes = run(kills=2, slice_size=3, outage_s=4.0, latency=0.5, pg_restart=True)
    print_table(outcomes)
    assert [o.trial for o in outcomes] == ["faults", "kill-9 #1", "kill-9 #2", "pg-restart", "outage", "resume"]
    assert all(o.ok for o in outcomes), [(o.trial, o.problems) for o in outcomes]
    resume = outcomes[-1]
    assert resume.stored == 5 * 3 and resume.unfinished == 0 and resume.max_creations == 1

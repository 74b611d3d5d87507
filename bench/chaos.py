"""Chaos suite at full size: kill -9 runs at random moments, restart PostgreSQL mid-run, a provider
failing 20% of requests and fully down for a while; then resume through `asset-pipeline retry-failed`.
The trials and their checks live in `asset_pipeline_testing/chaos.py` (the CI-size test runs them too).

    .venv/bin/python bench/chaos.py [--kills 20] [--slice 8] [--outage 30]      # full size
    .venv/bin/python bench/chaos.py --kills 3 --slice 4 --outage 5               # CI size
    .venv/bin/python bench/chaos.py --keep-logs /tmp/chaos-logs                  # keep the runs' and daemon's logs
"""

import argparse
from pathlib import Path

from asset_pipeline_testing.chaos import print_table, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--slice", type=int, default=8)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--keep-logs", type=Path, help="copy the runs' and the daemon's logs here at the end")
    args = parser.parse_args()
    outcomes = run(args.kills, args.slice, args.outage, args.latency, not args.no_pg_restart, keep_logs=args.keep_logs)
    print_table(outcomes)
    raise SystemExit(0 if all(o.ok for o in outcomes) else 1)


if __name__ == "__main__":
    main()

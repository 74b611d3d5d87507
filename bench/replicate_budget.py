"""Benchmark: budget-metered Replicate generation against the local fake server, and ledger throughput.

1. 100 partitions in one range run at concurrency 16 against the fake server with 1 s latency per
   prediction: wall time of the run against the physical limit (100 x 1 s / 16).
2. Reservation throughput of the ledger with 8 processes reserving at once, SQLite and PostgreSQL.

    .venv/bin/python bench/replicate_budget.py [--partitions 100] [--latency 1.0] [--concurrency 16]
"""

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from asset_pipeline.definitions import build_defs
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState
from asset_pipeline_testing.helpers import materializations
from asset_pipeline_testing.ledger_race import reserve_until_exhausted
from asset_pipeline_testing.postgres import fresh_database

TOKEN = "r8_bench_token"


def range_run(
    root: Path, partitions: int, latency: float, concurrency: int, *, fault_rate: float = 0.0
) -> tuple[float, float, float, int]:
    """Wall seconds of the run and of its step, the fake server's bill, and images made."""
    catalog = root / "catalog.yaml"
    images = [{"id": f"img-{i:03d}", "category": "icon", "prompt": f"icon {i}", "width": 512, "height": 512, "seed": i}
              for i in range(partitions)]
    catalog.write_text(yaml.safe_dump({"images": images}))
    home = root / "home"
    home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "dagster.sqlite.yaml", home / "dagster.yaml")
    # Half the faults hit creation (429/500/503), half fail the prediction itself.
    state = FakeReplicateState(token=TOKEN, latency_s=latency, failure_rate=fault_rate / 2,
                               create_failure_rate=fault_rate / 2)
    with running_fake_replicate(state) as fake:
        os.environ.update(REPLICATE_BASE_URL=fake.base_url, REPLICATE_API_TOKEN=TOKEN)
        defs = build_defs(PipelineSettings(catalog=catalog, data_dir=root / "data", backend="replicate",
                                           max_concurrency=concurrency, poll_interval_s=0.1, max_attempts=8))
        tags = {"dagster/asset_partition_range_start": "img-000",
                "dagster/asset_partition_range_end": f"img-{partitions - 1:03d}"}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            started = time.perf_counter()
            result = dg.materialize(list(defs.assets), selection=["images"], instance=instance,
                                    resources=defs.resources, tags=tags, raise_on_error=False)
            wall = time.perf_counter() - started
            logs = {entry.dagster_event_type: entry.timestamp for entry in instance.all_logs(result.run_id)
                    if entry.dagster_event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)}
        step_wall = logs[dg.DagsterEventType.STEP_SUCCESS] - logs[dg.DagsterEventType.STEP_START]
        count = len(materializations(result))  # images only, not the prompts logged on the way
        return wall, step_wall, fake.bill_usd, count


def reservation_throughput(url: str, processes: int = 8, per_process: int = 60) -> float:
    ledger_engine(url)
    caps = BudgetCaps(total_usd=processes * per_process * 0.01, daily_usd=1e6, per_run_usd=1e6)
    start_at = time.time() + 2.0
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(reserve_until_exhausted, [(url, n, start_at, 0.01, caps) for n in range(processes)])
    return sum(count for count, _ in results) / max(seconds for _, seconds in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wall, step_wall, bill, count = range_run(Path(tmp), args.partitions, args.latency, args.concurrency)
        sqlite_rate = reservation_throughput(f"sqlite:///{tmp}/race.db")
    with fresh_database() as url:
        postgres_rate = reservation_throughput(url)
    limit = args.partitions * args.latency / args.concurrency
    print(f"range run: {count} images, concurrency {args.concurrency}, latency {args.latency:.1f} s")
    print(f"  run wall {wall:.2f} s (step {step_wall:.2f} s); limit {limit:.2f} s; ratio {step_wall / limit:.2f} "
          f"(step) / {wall / limit:.2f} (run)")
    print(f"  fake server bill ${bill:.4f}")
    print(f"ledger reservations/s, 8 processes: SQLite {sqlite_rate:.0f}, PostgreSQL {postgres_rate:.0f}")


if __name__ == "__main__":
    main()

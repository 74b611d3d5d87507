"""Benchmark: the whole catalog as a Dagster backfill through the daemon, on PostgreSQL.

A real instance (PostgreSQL storage, queued runs, dequeue every 1 s) and `dagster-daemon`, the fake
Replicate server (latency L, at most C predictions running, 429 beyond), and the progress hub with
one subscriber. The backfill is submitted the way the UI submits it (a PartitionBackfill on the
instance); the daemon's backfill loop turns it into runs. Printed: time from submission to the
first run's start, wall time from the first run's start to the backfill's end, the physical limit
max(N x L / C, N / create rate), their ratio (target <= 1.15), CPU seconds per image and peak memory
of the run workers, spend against the fake server's bill, and hub events.

    .venv/bin/python bench/backfill.py [--latency 2] [--concurrency 32] [--partitions-per-run N]
        [--provider-create-limit 10] [--partitions 100]

`--provider-create-limit N` makes the fake provider answer 429 + Retry-After above N creates/s
(issue 16); the 429s it answered are printed. `--partitions N` runs the first N catalog entries
(a small-size run; the default is the whole 490-image catalog).
"""

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import yaml

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.catalog.loader import default_catalog_path
from asset_pipeline.definitions import build_defs
from asset_pipeline.hub.server import HubConfig
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.retry_selection import submit_backfill
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.backfill_support import (
    TOKEN,
    WorkerAccounting,
    backfill_done,
    backfill_runs,
    instance_home,
    project_daemon,
)
from asset_pipeline_testing.daemon import stop_process_group
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState
from asset_pipeline_testing.hub_process import running_hub
from asset_pipeline_testing.postgres import fresh_database


def sample_catalog(count: int) -> str:
    """The first `count` entries of the bundled catalog, as a catalog file."""
    document = yaml.safe_load(default_catalog_path().read_text())
    return yaml.safe_dump({**document, "images": document["images"][:count]})


def allow_runs_at_once(instance_yaml: Path, runs: int) -> None:
    """The instance lets `runs` image runs go together (issue 16: the provider limits are shared, so
    the pool no longer has to keep runs apart)."""
    config = yaml.safe_load(instance_yaml.read_text())
    config["concurrency"] = {"runs": {"max_concurrent_runs": runs}, "pools": {"default_limit": runs}}
    instance_yaml.write_text(yaml.safe_dump(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--create-rate", type=float, default=10.0, help="predictions created per second (Replicate: 600/min)")
    parser.add_argument("--partitions-per-run", type=int, default=None)
    parser.add_argument("--provider-create-limit", type=float, default=None,
                        help="the fake provider answers 429 above this many creates/s")
    parser.add_argument("--partitions", type=int, default=None, help="only the first N catalog entries")
    parser.add_argument("--runs-at-once", type=int, default=None,
                        help="let this many image runs run together (the instance's run limit and image_provider pool)")
    args = parser.parse_args()
    settings_env = {"ASSET_PIPELINE_BACKEND": "replicate", "ASSET_PIPELINE_MAX_CONCURRENCY": str(args.concurrency),
                    "ASSET_PIPELINE_REQUESTS_PER_SECOND": str(args.create_rate), "ASSET_PIPELINE_POLL_INTERVAL_S": "0.2",
                    "ASSET_PIPELINE_BUDGET_TOTAL_USD": "100", "ASSET_PIPELINE_BUDGET_DAILY_USD": "100",
                    "ASSET_PIPELINE_BUDGET_PER_RUN_USD": "100"}
    if args.partitions_per_run:
        settings_env["ASSET_PIPELINE_PARTITIONS_PER_RUN"] = str(args.partitions_per_run)
    with tempfile.TemporaryDirectory() as scratch, fresh_database() as dagster_url, fresh_database() as ledger_url, \
            running_fake_replicate(FakeReplicateState(token=TOKEN, latency_s=args.latency, max_running=args.concurrency,
                                                      create_rate_limit=args.provider_create_limit)) as fake, \
            running_hub(HubConfig()) as hub:
        root = Path(scratch)
        catalog = None
        if args.partitions:
            catalog = root / "catalog.yaml"
            catalog.write_text(sample_catalog(args.partitions))
            settings_env["ASSET_PIPELINE_CATALOG"] = str(catalog)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
        home = instance_home(root)
        if args.runs_at_once:
            allow_runs_at_once(home / "dagster.yaml", args.runs_at_once)
        env.update(settings_env, DAGSTER_HOME=str(home), DAGSTER_POSTGRES_URL=dagster_url,
                   ASSET_PIPELINE_DATA_DIR=str(root / "data"), ASSET_PIPELINE_DATABASE_URL=ledger_url,
                   ASSET_PIPELINE_HUB_URL=hub.url, REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=fake.base_url)
        os.environ.update(DAGSTER_POSTGRES_URL=dagster_url)
        defs = build_defs(PipelineSettings(data_dir=root / "data", partitions_per_run=args.partitions_per_run,
                                           catalog=catalog))
        keys = defs.get_assets_def(IMAGES).partitions_def.get_partition_keys()
        received = [0]
        listening = threading.Event()

        def listen() -> None:
            with hub.subscribe() as client:
                listening.set()
                while True:
                    try:
                        message = json.loads(client.recv(timeout=600))
                    except Exception:  # noqa: BLE001 - the hub stopped
                        return
                    if message["type"] == "ping":
                        client.send('{"type": "pong"}')
                    received[0] += message["type"] in ("progress", "run_event")

        threading.Thread(target=listen, daemon=True).start()
        listening.wait(10)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            daemon = project_daemon(env, root / "daemon.log")
            time.sleep(3)  # the daemon is up before the backfill is submitted, as in production
            submitted = time.time()
            backfill_id = submit_backfill(instance, defs, keys, reason="every image, as from the UI")
            workers = WorkerAccounting(session=daemon.pid)
            try:
                while not backfill_done(instance, backfill_id):
                    workers.sample()
                    time.sleep(0.5)
                    if daemon.poll() is not None:
                        raise RuntimeError((root / "daemon.log").read_text()[-3000:])
            finally:
                time.sleep(6)  # one more sensor tick for the lifecycle events
                stop_process_group(daemon)
            records = backfill_runs(instance, backfill_id)
            materialized = len(instance.get_materialized_partitions(IMAGES))
        first_start = min(r.start_time for r in records)
        end = max(r.end_time for r in records)
        status = BudgetLedger(ledger_engine(ledger_url)).status(BudgetCaps(100, 100, 100))
        hub_status = hub.hub.status()
    n = len(keys)
    limit = max(n * args.latency / args.concurrency, n / args.create_rate)
    wall = end - first_start
    at_once = f", {args.runs_at_once} runs at once" if args.runs_at_once else ""
    print(f"backfill of {n} partitions in {len(records)} run(s){at_once}, PostgreSQL instance, daemon + run queue; "
          f"fake Replicate latency {args.latency:g} s, concurrency {args.concurrency}, create rate {args.create_rate:g}/s")
    print(f"  submission -> first run start   {first_start - submitted:6.1f} s")
    print(f"  first run start -> backfill end {wall:6.1f} s   limit {limit:.1f} s "
          f"(max of {n * args.latency / args.concurrency:.1f}, {n / args.create_rate:.1f})   ratio {wall / limit:.2f} (target <= 1.15)")
    wall_clock = time.time() - time.monotonic()  # the fake server runs in this process
    creations = sorted(t + wall_clock for t in fake.create_times)
    print(f"  where the time went: run start -> first creation {creations[0] - first_start:.1f} s, creations "
          f"{creations[-1] - creations[0]:.1f} s ({len(creations) / max(creations[-1] - creations[0], 1e-9):.1f}/s), "
          f"last creation -> backfill end {end - creations[-1]:.1f} s")
    lo, hi = creations[len(creations) // 10], creations[len(creations) * 9 // 10]
    print(f"  steady create rate (middle 80% of creations) {0.8 * len(creations) / max(hi - lo, 1e-9):.1f}/s "
          f"against the limit {args.create_rate:g}/s")
    print(f"  images materialized {materialized}/{n}; predictions created {fake.created_total}, "
          f"max per request {max(fake.creations.values())}")
    if args.provider_create_limit:
        print(f"  provider limit {args.provider_create_limit:g} creates/s: 429s received {fake.answered_429}; "
              f"wall {wall:.1f} s against {n / args.provider_create_limit:.1f} s at the limit "
              f"(x{wall / (n / args.provider_create_limit):.2f}, target <= 1.1)")
    print(f"  daemon + code servers + run workers: CPU {workers.cpu_seconds:.1f} s = "
          f"{workers.cpu_seconds / n * 1000:.0f} ms/image, peak RSS of one process {workers.peak_mib:.0f} MiB")
    print(f"  spend ${status.spent_total_usd:.4f} vs fake bill ${fake.bill_usd:.4f}; open reservations {status.open_reservations}")
    print(f"  hub: events received {hub_status['events_received']}, delivered {hub_status['events_delivered']}, "
          f"one subscriber got {received[0]} progress/run events, slow clients cut "
          f"{hub_status['slow_clients_disconnected']}")


if __name__ == "__main__":
    main()

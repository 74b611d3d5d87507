"""Benchmark: adaptive concurrency against a provider that slows down (issue 16).

One range run of N partitions (default 300) against the fake Replicate server: at most C
predictions running at once (429 + Retry-After beyond, default 16), at most R creates/s (429
beyond, default 10), latency 1 s that becomes 6 s once half the images were created. Printed: the
shared in-flight limit, predictions running at the provider and images finished, every 5 s (a small
table); images/s against the ideal (each half at min(R, C / latency)); and the 429s received.
`--mode run` is the old behaviour for comparison (a token bucket per run, a fixed thread pool).

    .venv/bin/python bench/adaptive_concurrency.py [--partitions 300] [--mode deployment|run]
"""

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import yaml

from asset_pipeline.definitions import build_defs
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.limits.sql_store import SqlLimitStore
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState
from asset_pipeline_testing.helpers import materializations

TOKEN = "r8_bench_token_never_printed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=300)
    parser.add_argument("--provider-concurrency", type=int, default=16)
    parser.add_argument("--create-rate", type=float, default=10.0)
    parser.add_argument("--slow-latency", type=float, default=6.0)
    parser.add_argument("--ceiling", type=int, default=32, help="ASSET_PIPELINE_PROVIDER_MAX_CONCURRENCY and threads")
    parser.add_argument("--mode", choices=["deployment", "run"], default="deployment")
    args = parser.parse_args()
    n = args.partitions
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        catalog = root / "catalog.yaml"
        catalog.write_text(yaml.safe_dump({"images": [
            {"id": f"img-{i:03d}", "category": "icon", "prompt": f"icon {i}", "width": 512, "height": 512, "seed": i}
            for i in range(n)]}))
        home = root / "home"
        home.mkdir()
        shutil.copy(Path(__file__).parents[1] / "dagster.sqlite.yaml", home / "dagster.yaml")
        state = FakeReplicateState(token=TOKEN, latency_s=1.0, max_running=args.provider_concurrency,
                                   create_rate_limit=args.create_rate)
        with running_fake_replicate(state) as fake:
            os.environ.update(REPLICATE_BASE_URL=fake.base_url, REPLICATE_API_TOKEN=TOKEN)
            data = root / "data"
            defs = build_defs(PipelineSettings(
                catalog=catalog, data_dir=data, backend="replicate", hub_enabled=False, max_concurrency=args.ceiling,
                provider_max_concurrency=args.ceiling, requests_per_second=args.create_rate, poll_interval_s=0.2,
                provider_limits=args.mode, budget_total_usd=100, budget_daily_usd=100, budget_per_run_usd=100,
                breaker_minimum_calls=10_000, max_attempts=20))
            rows: list[tuple[float, str, int, int]] = []
            done = threading.Event()
            started = time.monotonic()

            def sample() -> None:
                store = None
                while not done.wait(5.0):
                    if store is None and (data / "ledger.db").exists():
                        store = SqlLimitStore(ledger_engine(f"sqlite:///{data / 'ledger.db'}"))
                    limit = store.read_limit("replicate") if store is not None else None
                    now = time.monotonic()
                    with fake.lock:
                        running = sum(1 for p in fake.predictions.values() if p.status in ("starting", "processing")
                                      and now - p.created < (p.latency_s or fake.latency_s))
                        finished = sum(1 for p in fake.predictions.values() if p.status == "succeeded")
                    rows.append((now - started, "-" if limit is None else str(limit.slots), running, finished))

            def slow_down() -> None:
                while fake.created_total < n // 2 and not done.is_set():
                    time.sleep(0.05)
                fake.latency_s = args.slow_latency

            threading.Thread(target=sample, daemon=True).start()
            threading.Thread(target=slow_down, daemon=True).start()
            tags = {"dagster/asset_partition_range_start": "img-000",
                    "dagster/asset_partition_range_end": f"img-{n - 1:03d}"}
            with dg.DagsterInstance.from_config(str(home)) as instance:
                t0 = time.perf_counter()
                result = dg.materialize(list(defs.assets), selection=["images"], instance=instance,
                                        resources=defs.resources, tags=tags, raise_on_error=False)
                wall = time.perf_counter() - t0
            done.set()
            made = len(materializations(result))  # images only, not the prompts logged on the way
    half = n / 2
    ideal = half / min(args.create_rate, args.provider_concurrency / 1.0) + \
        half / min(args.create_rate, args.provider_concurrency / args.slow_latency)
    print(f"{n} images, one run, mode {args.mode}: provider at most {args.provider_concurrency} running and "
          f"{args.create_rate:g} creates/s, latency 1 s -> {args.slow_latency:g} s after {n // 2} creations; ceiling {args.ceiling}")
    print("    t (s)  shared limit  running at provider  images finished")
    for at, limit, running, finished in rows:
        print(f"  {at:7.0f}  {limit:>12}  {running:>19}  {finished:>15}")
    print(f"  materialized {made}/{n} in {wall:.1f} s: {made / wall:.2f} images/s against the ideal "
          f"{n / ideal:.2f} ({ideal:.1f} s; x{wall / ideal:.2f}); 429s received {fake.answered_429}; "
          f"predictions created {fake.created_total}")


if __name__ == "__main__":
    main()

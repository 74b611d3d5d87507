"""Benchmark: a flaky provider. 200 partitions in one range run against the fake server (1 s
latency, concurrency 16): fault-free; with 30% of requests failing at random; and with 30% faults
plus a 30 s full outage (every request answered 503) in the middle of the run. Default settings
otherwise (breaker: 50% of 20 calls, 30 s cool-down, 3 trials; longest outage 600 s).

Printed per run: partitions materialized in one round, wall time against the fault-free run,
predictions created per stored image, and the ledger's spend against the fake's bill.

    .venv/bin/python bench/flaky_provider.py [--partitions 200] [--latency 1.0] [--outage 30]
"""

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import yaml

from asset_pipeline.definitions import build_defs
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState
from asset_pipeline_testing.helpers import materializations

TOKEN = "r8_bench_token"
CREATE_SHARE = 0.15  # of the 30%: refused creations (429/500/503); the rest fail the prediction


def run(root: Path, *, partitions: int, latency: float, concurrency: int, faults: float,
        outage_s: float = 0.0) -> dict[str, float]:
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"images": [
        {"id": f"img-{i:03d}", "category": "icon", "prompt": f"icon {i}", "width": 512, "height": 512, "seed": i}
        for i in range(partitions)]}))
    home = root / "home"
    home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "dagster.sqlite.yaml", home / "dagster.yaml")
    create_rate = min(faults, CREATE_SHARE)
    # Combined: 1 - (1 - create) * (1 - prediction) = faults.
    prediction_rate = 1 - (1 - faults) / (1 - create_rate) if faults else 0.0
    state = FakeReplicateState(token=TOKEN, latency_s=latency, failure_rate=prediction_rate,
                               create_failure_rate=create_rate)
    with running_fake_replicate(state) as fake:
        os.environ.update(REPLICATE_BASE_URL=fake.base_url, REPLICATE_API_TOKEN=TOKEN)
        data = root / "data"
        defs = build_defs(PipelineSettings(catalog=catalog, data_dir=data, backend="replicate", hub_enabled=False,
                                           max_concurrency=concurrency, poll_interval_s=0.2,
                                           budget_total_usd=100, budget_daily_usd=100, budget_per_run_usd=100))
        tags = {"dagster/asset_partition_range_start": "img-000",
                "dagster/asset_partition_range_end": f"img-{partitions - 1:03d}"}
        outage = threading.Thread(target=_outage_midway, args=(fake, partitions // 2, outage_s), daemon=True)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            if outage_s:
                outage.start()
            started = time.perf_counter()
            result = dg.materialize(list(defs.assets), selection=["images"], instance=instance,
                                    resources=defs.resources, tags=tags, raise_on_error=False)
            wall = time.perf_counter() - started
        made = len(materializations(result))  # images only, not the prompts logged on the way
        succeeded = Counter(repr((p.model, sorted(p.input.items()))) for p in fake.predictions.values()
                            if p.status == "succeeded")
        spent = BudgetLedger(ledger_engine(f"sqlite:///{data / 'ledger.db'}")).status(BudgetCaps(100, 100, 100))
        return {"made": made, "wall": wall, "created": fake.created_total, "bill": fake.bill_usd,
                "spent": spent.spent_total_usd, "open": spent.open_reservations,
                "paid_twice": sum(1 for count in succeeded.values() if count > 1)}


def _outage_midway(fake: FakeReplicateState, after_creations: int, seconds: float) -> None:
    while fake.created_total < after_creations:
        time.sleep(0.05)
    fake.down_until = time.monotonic() + seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--faults", type=float, default=0.3)
    parser.add_argument("--outage", type=float, default=30.0)
    args = parser.parse_args()
    shape = dict(partitions=args.partitions, latency=args.latency, concurrency=args.concurrency)
    runs = {}
    for label, faults, outage in (("fault-free", 0.0, 0.0), (f"{args.faults:.0%} faults", args.faults, 0.0),
                                  (f"{args.faults:.0%} + {args.outage:.0f} s outage", args.faults, args.outage)):
        with tempfile.TemporaryDirectory() as tmp:
            runs[label] = run(Path(tmp), faults=faults, outage_s=outage, **shape)
    clean = runs["fault-free"]["wall"]
    print(f"{args.partitions} partitions, latency {args.latency:.1f} s, concurrency {args.concurrency}")
    for label, r in runs.items():
        print(f"  {label:<22} materialized in one round {r['made']:.0f}/{args.partitions}, "
              f"wall {r['wall']:.1f} s (x{r['wall'] / clean:.2f} the fault-free run), "
              f"predictions created per stored image {r['created'] / max(1, r['made']):.2f}, "
              f"spent ${r['spent']:.4f} against the fake's bill ${r['bill']:.4f}, "
              f"open reservations {r['open']:.0f}, inputs paid twice {r['paid_twice']:.0f}")


if __name__ == "__main__":
    main()

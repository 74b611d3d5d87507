"""The chaos suite's machinery (`bench/chaos.py` runs it at full size, asset_pipeline_tests/test_chaos.py
at CI size). Chaos suite: kill -9 runs at random moments, restart PostgreSQL mid-run, a provider failing 20% of
requests and fully down for a while; then resume through `asset-pipeline retry-failed`.

Everything real: PostgreSQL instance and ledger, runs started with `dagster asset materialize`,
the fake Replicate server on loopback, the daemon for the retry backfill. Each trial works on its
own slice of the catalog, so every kill lands on fresh, paid work. After each trial:

  - the ledger's charges never exceed the fake server's bill, and the bill never exceeds charges
    plus open reservations (paid work not yet charged is still reserved, to be re-attached);
  - no prediction was created twice for one request hash;
  - every stored image decodes completely (no truncated file);
  - charges plus reservations never pass the daily cap (twice one payment per image);
  - every partition of the trial is stored or failed with a reason (a killed run is reported
    failed, as run monitoring reports a dead worker).

After the resume every partition is stored and charges equal the bill exactly.

    .venv/bin/python bench/chaos.py [--kills 20] [--slice 8] [--outage 30]      # full size
    .venv/bin/python bench/chaos.py --kills 3 --slice 4 --outage 5               # CI size
    .venv/bin/python bench/chaos.py --keep-logs /tmp/chaos-logs                  # keep the runs' and daemon's logs
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from PIL import Image

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.backfill_support import PROJECT, TOKEN, backfill_done, instance_home, project_daemon
from asset_pipeline_testing.daemon import stop_process_group
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState, fingerprint
from asset_pipeline_testing.postgres import fresh_database

PRICE = 0.003  # flux-schnell on the fake server


@dataclass
class Outcome:
    trial: str
    detail: str
    stored: int
    failed: int
    unfinished: int
    charged_usd: float
    reserved_usd: float
    bill_usd: float
    max_creations: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Chaos:
    def __init__(self, root: Path, fake: FakeReplicateState, dagster_url: str, ledger_url: str, total: int):
        self.root, self.fake, self.ledger_url = root, fake, ledger_url
        # Twice one payment per image: a killed run's reservations stay open (counted against the
        # caps) until the resume re-attaches to their predictions and charges them.
        self.cap = round(2 * total * PRICE + 1e-6, 6)
        entries = [{"id": f"img-{i:03d}", "category": "icon", "prompt": f"a brass key number {i}", "width": 512,
                    "height": 512, "seed": i} for i in range(total)]
        self.ids = [entry["id"] for entry in entries]
        catalog = root / "catalog.yaml"
        catalog.write_text(yaml.safe_dump({"images": entries}))
        self.data = root / "data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
        self.env.update(
            DAGSTER_HOME=str(instance_home(root)), DAGSTER_POSTGRES_URL=dagster_url,
            ASSET_PIPELINE_CATALOG=str(catalog), ASSET_PIPELINE_DATA_DIR=str(self.data),
            ASSET_PIPELINE_DATABASE_URL=ledger_url, ASSET_PIPELINE_BACKEND="replicate",
            ASSET_PIPELINE_BUDGET_TOTAL_USD=str(self.cap), ASSET_PIPELINE_BUDGET_DAILY_USD=str(self.cap),
            ASSET_PIPELINE_BUDGET_PER_RUN_USD=str(self.cap), ASSET_PIPELINE_POLL_INTERVAL_S="0.1",
            ASSET_PIPELINE_BACKOFF_BASE_S="0.2", ASSET_PIPELINE_MAX_ATTEMPTS="6", ASSET_PIPELINE_HUB_ENABLED="false",
            REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=fake.base_url,
        )
        os.environ["DAGSTER_POSTGRES_URL"] = dagster_url
        self.runs_log = root / "runs.log"

    def start_run(self, keys: list[str]) -> subprocess.Popen:
        command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                   "asset_pipeline.definitions", "--select", "images", "--partition-range", f"{keys[0]}...{keys[-1]}"]
        log = open(self.runs_log, "a")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def wait(self, process: subprocess.Popen, timeout: float = 300) -> None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def wait_for_first_creation(self, process: subprocess.Popen) -> None:
        """Until the run is up and paying for predictions (or has exited)."""
        created_before, started = self.fake.created_total, time.monotonic()
        while self.fake.created_total == created_before and process.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.02)

    def retry_failed(self) -> dict:
        """`asset-pipeline retry-failed` as an operator runs it: while the outage's circuit breaker
        is still open it refuses and says for how long, so wait that out and run it again."""
        for _ in range(10):
            retry = subprocess.run([str(Path(sys.executable).parent / "asset-pipeline"), "retry-failed", "--json"],
                                   cwd=PROJECT, env=self.env, capture_output=True, text=True, timeout=300)
            report = json.loads(retry.stdout)
            if retry.returncode == 0:
                return report
            assert report["circuit_open_for_s"] > 0, retry.stderr
            time.sleep(report["circuit_open_for_s"] + 0.5)
        raise AssertionError("the circuit breaker never let retry-failed through")

    def report_dead_runs(self) -> None:
        """What run monitoring does for a dead worker: mark its run failed, which frees its pool
        slots and makes its unfinished partitions "failed", so retry-failed picks them up."""
        with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
            for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                         dg.DagsterRunStatus.STARTING])):
                instance.report_run_failed(run, "run worker killed with SIGKILL (chaos)")
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)

    def check(self, trial: str, detail: str, keys: list[str], *, final: bool = False) -> Outcome:
        status = BudgetLedger(ledger_engine(self.ledger_url)).status(BudgetCaps(self.cap, self.cap, self.cap))
        bill, problems = self.fake.bill_usd, []
        if status.spent_total_usd > bill + 1e-9:
            problems.append(f"charged {status.spent_total_usd:.4f} > bill {bill:.4f}")
        if bill > status.spent_total_usd + status.reserved_usd + 1e-9:
            problems.append(f"bill {bill:.4f} not covered by charges + reservations")
        if final and abs(bill - status.spent_total_usd) > 1e-9:
            problems.append(f"after resume: charged {status.spent_total_usd:.4f} != bill {bill:.4f}")
        # A failed prediction may be followed by another (that is a retry, and free); what must never
        # happen is two predictions for one request that could both deliver, i.e. paying twice.
        live = Counter(fingerprint(p.model, p.input) for p in self.fake.predictions.values()
                       if p.status not in ("failed", "canceled"))
        creations = max(live.values(), default=0)
        if creations > 1:
            prompts = sorted({p.input.get("prompt", "") for p in self.fake.predictions.values()
                              if live[fingerprint(p.model, p.input)] > 1})
            problems.append(f"{creations} live predictions for one request hash ({', '.join(prompts)[:200]})")
        if status.spent_today_usd + status.reserved_usd > self.cap + 1e-9:
            problems.append("the daily cap was passed")
        for png in (self.data / "images").glob("*.png") if (self.data / "images").exists() else []:
            try:
                with Image.open(png) as image:
                    image.load()
            except Exception as exc:  # noqa: BLE001 - any decode failure is a truncated file
                problems.append(f"{png.name} does not decode: {exc.__class__.__name__}")
        with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
            from asset_pipeline.assets import image_partitions
            from asset_pipeline.catalog import load_catalog
            from asset_pipeline.partition_status import partition_statuses

            statuses = partition_statuses(instance, IMAGES, image_partitions(load_catalog(self.env["ASSET_PIPELINE_CATALOG"])))
            neither = [key for key in keys if key not in statuses.materialized and key not in statuses.failed]
            if neither:  # every partition must end stored or failed with a reason
                problems.append("neither stored nor failed: " + ", ".join(
                    f"{key} ({statuses.status_of(key)}; runs {_runs_of(instance, key)})" for key in neither))
        stored = sum(1 for key in keys if key in statuses.materialized)
        failed = sum(1 for key in keys if key in statuses.failed and key not in statuses.materialized)
        unfinished = len(neither)
        if final and stored != len(keys):
            lines = "\n".join(log.read_text(errors="replace") for log in self.root.glob("*.log")).splitlines()
            reasons = sorted({line.split(" failed: ", 1)[1][:200] for line in lines
                              if " failed: " in line and any(f"partition {key} " in line for key in keys
                                                            if key not in statuses.materialized)})[:3]
            problems.append(f"after resume {len(keys) - stored} partition(s) are not stored: {reasons}")
        return Outcome(trial, detail, stored, failed, unfinished, status.spent_total_usd, status.reserved_usd, bill,
                       creations, problems)


def _runs_of(instance: dg.DagsterInstance, key: str) -> str:
    """The statuses of the runs whose partition range covered `key`, oldest first."""
    runs = [run for run in instance.get_runs(limit=200)
            if run.tags.get("dagster/asset_partition_range_start", "~") <= key <= run.tags.get("dagster/asset_partition_range_end", "")
            or run.tags.get("dagster/partition") == key]
    return ", ".join(run.status.value for run in reversed(runs)) or "none"


def run(kills: int, slice_size: int, outage_s: float, latency: float, pg_restart: bool, seed: int = 7,
        keep_logs: Path | None = None) -> list[Outcome]:
    rng = random.Random(seed)
    slices = kills + 3
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as scratch, fresh_database() as dagster_url, fresh_database() as ledger_url, \
            running_fake_replicate(FakeReplicateState(token=TOKEN, latency_s=latency, max_running=16)) as fake:
        chaos = Chaos(Path(scratch), fake, dagster_url, ledger_url, slices * slice_size)
        parts = [chaos.ids[i * slice_size:(i + 1) * slice_size] for i in range(slices)]

        fake.failure_rate, fake.create_failure_rate = 0.1, 0.1
        chaos.wait(chaos.start_run(parts[0]))
        fake.failure_rate = fake.create_failure_rate = 0.0
        outcomes.append(chaos.check("faults", "20% of requests fail", parts[0]))

        for number in range(kills):
            keys = parts[1 + number]
            process = chaos.start_run(keys)
            chaos.wait_for_first_creation(process)
            moment = rng.uniform(0.0, 1.5 * latency)  # somewhere between creation, polling, download, storing
            time.sleep(moment)
            detail = f"{moment:.2f} s after the first creation"
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                detail = "the run finished before the kill"
            process.wait()
            chaos.report_dead_runs()
            outcomes.append(chaos.check(f"kill-9 #{number + 1}", detail, keys))

        keys = parts[kills + 1]
        process = chaos.start_run(keys)
        chaos.wait_for_first_creation(process)  # the run is paying for predictions
        time.sleep(latency / 2)
        version = next(iter(os.listdir("/etc/postgresql")), None) if os.path.isdir("/etc/postgresql") else None
        if pg_restart and version and shutil.which("pg_ctlcluster"):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                           capture_output=True)
            detail = "PostgreSQL restarted mid-run"
        else:
            detail = "PostgreSQL restart skipped (no pg_ctlcluster)"
        chaos.wait(process)
        outcomes.append(chaos.check("pg-restart", detail, keys))

        keys = parts[kills + 2]
        process = chaos.start_run(keys)
        time.sleep(1.0)
        fake.down_until = time.monotonic() + outage_s
        chaos.wait(process, timeout=300 + outage_s)
        outcomes.append(chaos.check("outage", f"provider down {outage_s:g} s", keys))
        time.sleep(max(0.0, fake.down_until - time.monotonic()))

        report = chaos.retry_failed()
        if report["backfill_id"]:
            daemon = project_daemon(chaos.env, chaos.root / "daemon.log")
            try:
                with dg.DagsterInstance.from_config(chaos.env["DAGSTER_HOME"]) as instance:
                    deadline = time.monotonic() + 600
                    while not backfill_done(instance, report["backfill_id"]) and time.monotonic() < deadline:
                        time.sleep(1)
            finally:
                stop_process_group(daemon)
        outcomes.append(chaos.check("resume", f"retry-failed re-ran {len(report['failed'])} partition(s)",
                                    chaos.ids, final=True))
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in chaos.root.glob("*.log"):
                shutil.copy(log, keep_logs / log.name)
    return outcomes


def print_table(outcomes: list[Outcome]) -> None:
    print(f"{'trial':12s} {'detail':42s} {'stored':>6s} {'failed':>6s} {'unfin':>5s} {'charged':>8s} "
          f"{'reserved':>8s} {'bill':>8s} {'max×':>4s}  result")
    for o in outcomes:
        print(f"{o.trial:12s} {o.detail[:42]:42s} {o.stored:6d} {o.failed:6d} {o.unfinished:5d} {o.charged_usd:8.4f} "
              f"{o.reserved_usd:8.4f} {o.bill_usd:8.4f} {o.max_creations:4d}  {'ok' if o.ok else '; '.join(o.problems)}")

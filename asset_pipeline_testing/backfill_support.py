"""Shared pieces of the full-scale benchmarks: a PostgreSQL-backed instance home, the daemon, the
fake Replicate server, and /proc accounting of the run worker processes."""

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from asset_pipeline_testing.daemon import start_daemon

PROJECT = Path(__file__).parents[1]
TOKEN = "r8_bench_token_never_printed"


def instance_home(root: Path) -> Path:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "dagster.postgres.yaml", home / "dagster.yaml")
    return home


def project_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The daemon over the project's own workspace.yaml (`asset_pipeline_testing.daemon`)."""
    return start_daemon(env=env, workspace=PROJECT / "workspace.yaml", log=log, cwd=PROJECT)


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.RunRecord]:
    return list(instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def backfill_done(instance: dg.DagsterInstance, backfill_id: str) -> bool:
    if instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED:
        return False
    return all(record.dagster_run.is_finished for record in backfill_runs(instance, backfill_id))


@dataclass
class WorkerAccounting:
    """CPU seconds and peak RSS of every process in the daemon's session (the daemon, its code
    servers and the run workers it launches), sampled from /proc."""

    session: int
    cpu: dict[int, float] = field(default_factory=dict)
    peak_rss_mib: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.session:
                    continue
                self.cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_mib[int(entry.name)] = int(line.split()[1]) / 1024
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    @property
    def peak_mib(self) -> float:
        return max(self.peak_rss_mib.values(), default=0.0)

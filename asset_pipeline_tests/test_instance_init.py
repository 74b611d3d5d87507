"""`make instance` initialises a new DAGSTER_HOME once (scripts/init_instance.sh: copy dagster.sqlite.yaml,
`dagster instance migrate`), so concurrent first runs on it cannot race on Dagster's schema set-up
(before: three `dagster asset materialize` 0.7 s apart could leave two alembic heads)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import dagster as dg

from asset_pipeline_tests.cli_fixtures import BIN, PROJECT


def test_the_makefile_initialises_the_instance_with_the_script() -> None:
    makefile = (PROJECT / "Makefile").read_text()
    assert 'scripts/init_instance.sh "$(BIN)/dagster"' in makefile
    for target in ("demo", "dev", "hub", "bench"):
        assert any(line.startswith(f"{target}:") and "instance" in line for line in makefile.splitlines()), target


def test_three_concurrent_first_runs_on_an_initialised_home_all_succeed(cli_env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "fresh_home"
    env = {**cli_env, "DAGSTER_HOME": str(home), "ASSET_PIPELINE_HUB_ENABLED": "false"}
    init = subprocess.run([str(PROJECT / "scripts" / "init_instance.sh"), str(BIN / "dagster")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert init.returncode == 0, init.stderr
    assert (home / "dagster.yaml").read_text() == (PROJECT / "dagster.sqlite.yaml").read_text()
    runs = []
    for key in ("img-00", "img-01", "img-02"):
        runs.append(subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images",
             "--partition", key], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        time.sleep(0.7)
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert len(records) == 3 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    again = subprocess.run([str(PROJECT / "scripts" / "init_instance.sh"), str(BIN / "dagster")], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr  # idempotent: `make demo` runs it every time
    assert os.access(home / "history" / "runs.db", os.R_OK)

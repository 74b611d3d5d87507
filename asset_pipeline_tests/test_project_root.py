"""Starting Dagster from the project root the way the README says: `dagster dev` (what `make dev`
runs) prints no "dagster.yaml in the current folder" warning, and `dg launch` materializes a range."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from asset_pipeline_tests.cli_fixtures import BIN, PROJECT


def test_the_project_root_holds_no_stray_instance_config() -> None:
    assert not (PROJECT / "dagster.yaml").exists() and not (PROJECT / "dagster.yml").exists()
    assert "dagster.sqlite.yaml" in (PROJECT / "scripts" / "init_instance.sh").read_text()  # what `make instance` copies


def test_dagster_dev_from_the_project_root_starts_without_a_config_warning(cli_env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        dev = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-p", "0"], cwd=PROJECT,
                               env=cli_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Launching Dagster services" not in log.read_text():  # logged right after the check
            assert dev.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=60)
    assert "Found a dagster instance configuration" not in log.read_text()


def test_dg_launch_materializes_a_partition_range(run_cli, cli_env: dict[str, str]) -> None:
    done = run_cli("dg", "launch", "--assets", "images", "--partition-range", "img-00...img-01")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in Path(cli_env["ASSET_PIPELINE_DATA_DIR"], "images").glob("*.png")) == [
        "img-00.png", "img-01.png"]

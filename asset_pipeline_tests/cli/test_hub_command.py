"""`asset-pipeline hub` as a user starts it: refuses public addresses without a token, serves with one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from asset_pipeline_testing.serving import free_port
from asset_pipeline_tests.cli_fixtures import BIN, PROJECT


def test_a_public_address_without_a_token_is_refused(run_cli) -> None:
    result = run_cli("asset-pipeline", "hub", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "ASSET_PIPELINE_HUB_TOKEN: refusing to listen on 0.0.0.0 without a token" in result.stderr


def test_the_hub_serves_and_enforces_its_token_without_printing_it(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = {**cli_env, "ASSET_PIPELINE_HUB_TOKEN": "tok-NEVER-printed"}
    log = open(tmp_path / "hub.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(BIN / "asset-pipeline"), "hub", "--host", "0.0.0.0", "--port", str(port)],
                               cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
            time.sleep(0.1)
        assert httpx.get(url + "/api/status").status_code == 401
        status = httpx.get(url + "/api/status", headers={"Authorization": "Bearer tok-NEVER-printed"}).json()
        assert status["connections"] == 0
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    output = (tmp_path / "hub.log").read_text()
    assert "token required" in output and "tok-NEVER-printed" not in output

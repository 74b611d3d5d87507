"""Fixtures for driving the real command-line tools in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def cli_env(tmp_path: Path, catalog_path: Path) -> dict[str, str]:
    """A project-like environment: its own DAGSTER_HOME (SQLite), data dir and small catalog."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.sqlite.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        ASSET_PIPELINE_CATALOG=str(catalog_path),
        ASSET_PIPELINE_DATA_DIR=str(tmp_path / "data"),
    )
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / args[0]), *args[1:]]
        return subprocess.run(command, cwd=PROJECT, env=env or cli_env, capture_output=True, text=True, timeout=300)

    return run

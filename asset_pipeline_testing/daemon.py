"""The one way tests and benchmarks run the real `dagster-daemon` (schedules, sensors, backfills,
the run queue), and stop it with everything it started (code servers, run workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def start_daemon(*, env: dict[str, str], workspace: Path, log: Path, cwd: Path) -> subprocess.Popen:
    """`dagster-daemon run -w WORKSPACE` in its own process group, output appended to `log`."""
    with log.open("a") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(process: subprocess.Popen, *, timeout_s: float = 30) -> None:
    """SIGTERM to the process's group (the daemon and what it launched), SIGKILL after `timeout_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


@contextmanager
def running_daemon(*, env: dict[str, str], workspace: Path, log: Path, cwd: Path) -> Iterator[subprocess.Popen]:
    """The daemon for the duration of the block; stopped (with its children) afterwards."""
    daemon = start_daemon(env=env, workspace=workspace, log=log, cwd=cwd)
    try:
        yield daemon
    finally:
        stop_process_group(daemon)

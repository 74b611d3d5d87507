"""Atomic writes: an interrupted write (exception or kill -9) leaves the old file intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asset_pipeline.storage.atomic import atomic_write


def test_write_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "image.png"
    atomic_write(target, b"first")
    atomic_write(target, [b"sec", b"ond"])
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["image.png"]


def test_exception_mid_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    atomic_write(target, b"good image")

    def chunks():
        yield b"half of a new ima"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, chunks())
    assert target.read_bytes() == b"good image"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_killed_writer_leaves_the_old_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    atomic_write(target, b"good image")
    started = tmp_path / "started"
    writer = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from asset_pipeline.storage.atomic import atomic_write

        def chunks():
            yield b"x" * 1024
            Path({str(started)!r}).touch()
            while True:
                time.sleep(0.05)
                yield b"y" * 1024

        atomic_write(Path({str(target)!r}), chunks())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 30
    while not started.exists():
        assert process.poll() is None, "writer exited early"
        assert time.monotonic() < deadline, "writer never started"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert target.read_bytes() == b"good image"
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the dead writer's temporary file, never the target

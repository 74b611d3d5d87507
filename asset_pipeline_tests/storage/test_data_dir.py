"""Unusable data directories are refused before anything is written, in one line naming
ASSET_PIPELINE_DATA_DIR: the filesystem root, system and home directories, kernel file systems, a
file, a folder that cannot be written; through `dagster asset materialize` the refusal fails the run
once (no retry) and through `asset-pipeline` it is one line with exit status 2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.storage.data_dir import check_data_dir


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/bin", "/proc", "/proc/self", "/sys/kernel", "/dev", "/tmp", "~"])
def test_system_and_home_directories_are_refused(path: str) -> None:
    before = set(Path("/").iterdir())
    with pytest.raises(ConfigurationError) as error:
        check_data_dir(path)
    assert str(error.value).startswith("ASSET_PIPELINE_DATA_DIR: ") and "\n" not in str(error.value)
    assert set(Path("/").iterdir()) == before  # nothing created at the root


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="exists and is not a directory"):
        check_data_dir(tmp_path / "file")
    with pytest.raises(ConfigurationError, match="exists and is not a directory"):
        check_data_dir(tmp_path / "file", write=False)


def test_a_path_below_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not a writable directory"):
        check_data_dir(tmp_path / "file" / "data")


def test_an_immutable_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "frozen"
    folder.mkdir()
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(ConfigurationError, match="frozen is not a writable directory"):
            check_data_dir(folder)
        assert list(folder.iterdir()) == []  # the probe left nothing behind
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories; the immutable test covers root")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    with pytest.raises(ConfigurationError, match="not a writable directory"):
        check_data_dir(folder)


def test_a_missing_directory_is_created_and_a_normal_one_accepted(tmp_path: Path) -> None:
    assert check_data_dir(tmp_path / "new" / "data") == (tmp_path / "new" / "data").resolve()
    assert (tmp_path / "new" / "data").is_dir() and list((tmp_path / "new" / "data").iterdir()) == []


def test_dagster_refuses_a_data_dir_that_is_a_file_without_a_traceback(run_cli, cli_env, tmp_path: Path) -> None:
    data = tmp_path / "data-file"
    data.write_text("not a folder")
    env = {**cli_env, "ASSET_PIPELINE_DATA_DIR": str(data)}
    done = run_cli("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images",
                   "--partition", "img-01", env=env)
    assert done.returncode != 0
    assert f"ASSET_PIPELINE_DATA_DIR: {data} exists and is not a directory" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 15
    assert data.read_text() == "not a folder"


def test_an_unwritable_data_dir_fails_the_run_once_at_setup_without_retries(tmp_path: Path, catalog_path: Path) -> None:
    """Setup refuses it with a non-retryable failure: the images step (RetryPolicy: 2) never starts."""
    from asset_pipeline_testing.helpers import materialize, pipeline_defs

    folder = tmp_path / "frozen"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with dg.instance_for_test() as instance:
            result = materialize(pipeline_defs(catalog_path, folder), instance, partition="img-01")
            assert not result.success
            types = [event.event_type for event in result.all_events]
            assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in types and dg.DagsterEventType.STEP_START not in types
            [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
            assert f"ASSET_PIPELINE_DATA_DIR: {folder} is not a writable directory" in str(failure.event_specific_data.error)
            assert len(instance.get_run_records()) == 1
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)

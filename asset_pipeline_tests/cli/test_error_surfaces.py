"""Invalid catalogs and settings reach the user as a short clear message, never a traceback: through
`dagster asset materialize` (a load error Dagster's CLI prints as `Error: ...`) and through every
`asset-pipeline` read command (one line, exit status 2). A database URL's password is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline_testing.helpers import write_catalog

PASSWORD = "pw-SHOULD-NOT-SHOW-314"
MATERIALIZE = ("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images",
               "--partition", "img-01")


def assert_short(stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and len(lines) <= 15, stderr
    assert any(message in line for line in lines[:5]), stderr


def test_a_bad_catalog_is_a_short_message_from_dagster(run_cli, cli_env, tmp_path: Path) -> None:
    bad = write_catalog(tmp_path / "bad.yaml", [{"id": "ok", "category": "icon", "prompt": "a\u202eb"}])
    done = run_cli(*MATERIALIZE, env={**cli_env, "ASSET_PIPELINE_CATALOG": str(bad)})
    assert done.returncode != 0
    assert_short(done.stderr, f"{bad}: entry 'ok' (#0): field 'prompt': must not contain control, bidi or zero-width")
    assert "the asset_pipeline code location cannot load" in done.stderr


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("ASSET_PIPELINE_MAX_CONCURRENCY", "-4", "ASSET_PIPELINE_MAX_CONCURRENCY: Input should be greater than or equal to 1"),
    ("ASSET_PIPELINE_BUDGET_TOTAL_USD", "nan", "ASSET_PIPELINE_BUDGET_TOTAL_USD: "),
    ("ASSET_PIPELINE_DATABASE_URL", f"mysql://user:{PASSWORD}@db/ledger", "ASSET_PIPELINE_DATABASE_URL: unsupported database 'mysql' in mysql://user:***@db/ledger"),
    ("ASSET_PIPELINE_DATABASE_URL", "not a url", "ASSET_PIPELINE_DATABASE_URL: not a database URL"),
    ("ASSET_PIPELINE_DATA_DIR", "/", "ASSET_PIPELINE_DATA_DIR: / is a system or home directory"),
])
def test_a_bad_setting_is_a_short_message_from_dagster(run_cli, cli_env, variable: str, value: str, message: str) -> None:
    done = run_cli(*MATERIALIZE, env={**cli_env, variable: value})
    assert done.returncode != 0
    assert_short(done.stderr, message)
    assert PASSWORD not in done.stdout + done.stderr


def test_dagster_definitions_validate_still_reports_the_message(run_cli, cli_env) -> None:
    """Code servers (`dagster dev`, `definitions validate`) report the load error with its message."""
    done = run_cli("dagster", "definitions", "validate", "-m", "asset_pipeline.definitions",
                   env={**cli_env, "ASSET_PIPELINE_DATABASE_URL": "mysql://u@h/d"})
    assert done.returncode != 0
    assert "ASSET_PIPELINE_DATABASE_URL: unsupported database 'mysql'" in done.stdout + done.stderr


def _corrupt_ledger(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "ledger.db").write_bytes(b"this is not a SQLite database, just garbage bytes " * 40)
    return {"ASSET_PIPELINE_DATA_DIR": str(data)}


def _file_data_dir(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a-file").write_text("x")
    return {"ASSET_PIPELINE_DATA_DIR": str(tmp_path / "a-file")}


CASES = {
    "corrupt ledger": (_corrupt_ledger, "error: ASSET_PIPELINE_DATA_DIR: cannot use the ledger database sqlite:///"),
    "garbage url": (lambda _: {"ASSET_PIPELINE_DATABASE_URL": "not a url"}, "error: ASSET_PIPELINE_DATABASE_URL: not a database URL"),
    "unsupported url": (lambda _: {"ASSET_PIPELINE_DATABASE_URL": f"mysql://u:{PASSWORD}@h/d"},
                        "error: ASSET_PIPELINE_DATABASE_URL: unsupported database 'mysql' in mysql://u:***@h/d"),
    "unreachable server": (lambda _: {"ASSET_PIPELINE_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"},
                           "error: ASSET_PIPELINE_DATABASE_URL: cannot use the ledger database postgresql://u:***@127.0.0.1:1/db"),
    "data dir is a file": (_file_data_dir, "error: ASSET_PIPELINE_DATA_DIR: "),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", [("budget",), ("ledger", "--json")])
def test_read_commands_name_the_broken_ledger_or_data_dir_in_one_line(run_cli, cli_env, tmp_path: Path, case: str,
                                                                      command: tuple[str, ...]) -> None:
    make_env, message = CASES[case]
    done = run_cli("asset-pipeline", *command, env={**cli_env, **make_env(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [("estimate",), ("retry-failed", "--dry-run")])
def test_paid_commands_name_the_broken_ledger_in_one_line(run_cli, cli_env, tmp_path: Path, command: tuple[str, ...]) -> None:
    env = {**cli_env, **_corrupt_ledger(tmp_path), "ASSET_PIPELINE_BACKEND": "replicate"}
    done = run_cli("asset-pipeline", *command, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(CASES["corrupt ledger"][1]) and "file is not a database" in done.stderr

"""Settings from ASSET_PIPELINE_* variables: defaults, overrides, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.settings import load_settings


def test_defaults_put_the_data_dir_under_dagster_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ASSET_PIPELINE_DATA_DIR", "ASSET_PIPELINE_BACKEND", "ASSET_PIPELINE_MAX_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.data_dir == tmp_path / "asset_pipeline_data"
    assert (settings.backend, settings.max_concurrency, settings.catalog) == ("placeholder", 8, None)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASSET_PIPELINE_MAX_CONCURRENCY", "3")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data" and settings.max_concurrency == 3


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("ASSET_PIPELINE_MAX_CONCURRENCY", "lots", "valid integer"),
        ("ASSET_PIPELINE_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
        ("ASSET_PIPELINE_BACKEND", "midjourney", "'placeholder', 'replicate', 'diffusers' or 'comfyui'"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{variable}: ") and reason in str(caught.value)


def test_the_cli_reports_a_bad_variable_in_one_line(run_cli, cli_env) -> None:
    done = run_cli("asset-pipeline", "catalog", "validate", env={**cli_env, "ASSET_PIPELINE_MAX_CONCURRENCY": "-4"})
    assert done.returncode == 2
    assert done.stderr.strip() == "error: ASSET_PIPELINE_MAX_CONCURRENCY: Input should be greater than or equal to 1"


@pytest.mark.parametrize(("value", "reason"), [
    ("mysql://user:s3cret-pw@db/ledger", "unsupported database 'mysql' in mysql://user:***@db/ledger"),
    ("http://user:s3cret-pw@example.com/", "unsupported database 'http'"),
    ("not a url", "not a database URL (expected sqlite:///PATH or postgresql://"),
    ("postgresql+nosuchdriver://user:s3cret-pw@h/db", "postgresql+nosuchdriver"),
])
def test_unusable_database_urls_name_the_variable_and_hide_the_password(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_DATABASE_URL", value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("ASSET_PIPELINE_DATABASE_URL: ") and reason in message and "\n" not in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize("value", ["sqlite:///ledger.db", "sqlite://", "postgresql://postgres:pw@127.0.0.1:5432/ledger",
                                   "postgresql+psycopg2://postgres@127.0.0.1/ledger"])
def test_supported_database_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_DATABASE_URL", value)
    assert load_settings().ledger_url == value

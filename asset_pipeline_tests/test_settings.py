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


# Each setting declared once: the nested config blocks read their documented variables ---------------

def _readme_variables() -> set[str]:
    """Every ASSET_PIPELINE_* name the README's environment table documents (`_X` is short for the
    row's first variable's prefix, e.g. `_DAILY_USD` after ASSET_PIPELINE_BUDGET_TOTAL_USD)."""
    import re

    text = (Path(__file__).parents[1] / "README.md").read_text()
    table = text[text.index("## Environment"):text.index("### Run config may tighten")]
    names: set[str] = set()
    for row in table.splitlines():
        if not row.startswith("| `ASSET_PIPELINE_"):
            continue
        cell = row.split("|")[1]
        full = re.findall(r"`(ASSET_PIPELINE_[A-Z0-9_]+)`", cell)
        names.update(full)
        first = full[0]
        for short in re.findall(r"`(_[A-Z0-9_]+)`", cell):  # any of the first name's prefixes + the short form
            names.update(first[:cut] + short for cut in range(len(first)) if first[cut] == "_")
    return names


def test_every_block_field_reads_a_variable_the_readme_documents() -> None:
    from asset_pipeline.settings import BLOCKS

    documented = _readme_variables()
    variables = [variable for block in BLOCKS.values() for variable in block.variables().values()]
    assert "ASSET_PIPELINE_BUDGET_TOTAL_USD" in variables and "ASSET_PIPELINE_GPU_HOUR_USD" in variables
    assert "ASSET_PIPELINE_DIFFUSERS_MODEL" in variables and "ASSET_PIPELINE_BREAKER_COOLDOWN_S" in variables
    missing = [variable for variable in variables if variable not in documented]
    assert not missing, f"not in the README's environment table: {missing}"


def test_block_variables_fill_the_nested_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in {"ASSET_PIPELINE_BUDGET_TOTAL_USD": "3.5", "ASSET_PIPELINE_BUDGET_PER_RUN_USD": "1",
                            "ASSET_PIPELINE_MAX_ATTEMPTS": "2", "ASSET_PIPELINE_FALLBACK_MODELS": " a/b , c/d ,",
                            "ASSET_PIPELINE_BREAKER_COOLDOWN_S": "4", "ASSET_PIPELINE_DIFFUSERS_MODEL": "/models/sdxl",
                            "ASSET_PIPELINE_GPU_HOUR_USD": "2.5"}.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert (settings.budget.total_usd, settings.budget.daily_usd, settings.budget.per_run_usd) == (3.5, 10.0, 1.0)
    assert settings.retries.max_attempts == 2 and settings.retries.fallback_models == ["a/b", "c/d"]
    assert settings.breaker.cooldown_s == 4.0 and settings.breaker.config.cooldown_s == 4.0
    assert settings.diffusers.model_dir == "/models/sdxl" and settings.diffusers.gpu_hour_usd == 2.5


def test_flat_keywords_set_block_fields_and_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from asset_pipeline.settings import PipelineSettings

    monkeypatch.setenv("ASSET_PIPELINE_BUDGET_DAILY_USD", "7")
    settings = PipelineSettings(budget_total_usd=0.5, breaker_minimum_calls=3, diffusers_refiner="/r")
    assert (settings.budget.total_usd, settings.budget.daily_usd) == (0.5, 7.0)
    assert settings.breaker.minimum_calls == 3 and settings.diffusers.refiner_dir == "/r"


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("ASSET_PIPELINE_BUDGET_TOTAL_USD", "nan", "finite number"),
    ("ASSET_PIPELINE_BUDGET_PER_RUN_USD", "-1", "greater than or equal to 0"),
    ("ASSET_PIPELINE_BREAKER_FAILURE_RATE", "1.5", "less than or equal to 1"),
    ("ASSET_PIPELINE_MAX_ATTEMPTS", "9" * 30, "less than or equal to 20"),
    ("ASSET_PIPELINE_DIFFUSERS_DEVICE", "tpu", "'auto', 'cuda', 'mps' or 'cpu'"),
    ("ASSET_PIPELINE_GPU_HOUR_USD", "free", "valid number"),
])
def test_bad_block_values_name_their_documented_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                        reason: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{variable}: ") and reason in str(caught.value)


def test_the_configured_catalog_is_loaded_in_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from asset_pipeline_testing.helpers import small_entries, write_catalog

    monkeypatch.delenv("ASSET_PIPELINE_CATALOG", raising=False)
    assert load_settings().catalog_file is None and len(load_settings().load_catalog().ids) > 400  # the bundled one
    monkeypatch.setenv("ASSET_PIPELINE_CATALOG", str(write_catalog(tmp_path / "c.yaml", small_entries(3))))
    assert load_settings().load_catalog().ids == ["img-00", "img-01", "img-02"]

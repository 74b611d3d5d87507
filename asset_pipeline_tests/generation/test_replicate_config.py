"""Configuration mistakes around Replicate are named in one line: a base URL ending in /v1 (refused
before any request, through the real CLI), a wrong token, a base URL that is not the API's root and
an unreachable host (explained on the first call), against the fake server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.replicate_config import check_base_url, shown_url
from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_testing.serving import free_port
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

PROJECT = Path(__file__).parents[2]


@pytest.mark.parametrize("url", ["https://api.replicate.com/v1", "https://api.replicate.com/v1/", "http://h:1/x/v1"])
def test_a_v1_suffix_is_refused_with_the_url_to_use_instead(url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_base_url(url)
    message = str(refused.value)
    assert message.startswith("REPLICATE_BASE_URL: ") and "/v1/v1/" in message and "\n" not in message
    assert f"set it to '{url.rstrip('/')[:-3]}'" in message


@pytest.mark.parametrize("url", ["api.replicate.com", "ftp://api.replicate.com", "https://"])
def test_a_base_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="REPLICATE_BASE_URL: .* is not an http"):
        check_base_url(url)


def test_the_api_root_passes_and_credentials_in_a_url_are_never_shown() -> None:
    check_base_url("https://api.replicate.com")
    check_base_url("http://127.0.0.1:8080/")
    assert shown_url("https://user:hunter2@proxy.example:8443/replicate") == "https://proxy.example:8443/replicate"


def _catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "c.yaml", [
        {"id": "img-00", "category": "icon", "prompt": "a brass key", "width": 512, "height": 512, "seed": 1}])


def test_the_cli_run_stops_at_setup_naming_the_v1_suffix(fake_replicate, cli_env, tmp_path: Path) -> None:
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(_catalog(tmp_path)), "ASSET_PIPELINE_BACKEND": "replicate",
           "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": f"{fake_replicate.base_url}/v1"}
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions",
               "--select", "images", "--partition", "img-00"]
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert (f"REPLICATE_BASE_URL: '{fake_replicate.base_url}/v1' ends in /v1, but the client adds /v1 itself"
            in output), output[-3000:]
    assert fake_replicate.created_total == 0 and TOKEN not in output


def _failure(tmp_path: Path, data_dir: Path, instance) -> str:
    result = materialize(pipeline_defs(_catalog(tmp_path), data_dir, backend="replicate"), instance, partition="img-00")
    return result.failure_data_for_node("images").error.message


def test_a_wrong_token_is_named(fake_replicate, tmp_path, data_dir, instance, monkeypatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_wrongWRONGwrong")
    message = _failure(tmp_path, data_dir, instance)
    assert "img-00: REPLICATE_API_TOKEN is missing or was refused by Replicate (HTTP 401): set it to a valid token" \
        in message
    assert "r8_wrongWRONGwrong" not in message and fake_replicate.created_total == 0


def test_a_base_url_that_is_not_the_api_root_is_named(fake_replicate, tmp_path, data_dir, instance, monkeypatch) -> None:
    monkeypatch.setenv("REPLICATE_BASE_URL", f"{fake_replicate.base_url}/api")
    message = _failure(tmp_path, data_dir, instance)
    assert f"REPLICATE_BASE_URL ('{fake_replicate.base_url}/api') is probably not the API's root" in message
    assert "invalid_input->fail" in message  # not retried: every request would get the same answer


def test_an_unreachable_host_is_named(tmp_path, data_dir, instance, monkeypatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("REPLICATE_BASE_URL", closed)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("ASSET_PIPELINE_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("ASSET_PIPELINE_MAX_ATTEMPTS", "2")
    message = _failure(tmp_path, data_dir, instance)
    assert f"cannot reach Replicate at '{closed}' (ConnectError): check REPLICATE_BASE_URL and the network" in message
    assert os.environ.get("REPLICATE_API_TOKEN") not in message

"""The download bounds reach the generator from the environment: delivery hosts, byte limit,
deadline and pixel cap; bad values are refused naming their variable."""

from __future__ import annotations

import pytest

from asset_pipeline.definitions import image_generator
from asset_pipeline.errors import ConfigurationError
from asset_pipeline.settings import load_settings


def test_the_variables_reach_the_delivery_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_DELIVERY_HOSTS", "cdn.example.com, *.files.example.com:8443")
    monkeypatch.setenv("ASSET_PIPELINE_MAX_DOWNLOAD_MB", "2")
    monkeypatch.setenv("ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S", "15")
    monkeypatch.setenv("ASSET_PIPELINE_MAX_OUTPUT_MEGAPIXELS", "12")
    generator = image_generator(load_settings())
    limits = generator.delivery_limits()
    assert limits.hosts == ("cdn.example.com", "*.files.example.com:8443")
    assert (limits.max_bytes, limits.timeout_s) == (2 * 1024 * 1024, 15.0)
    assert generator.max_output_megapixels == 12


def test_the_default_hosts_follow_replicate_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSET_PIPELINE_DELIVERY_HOSTS", raising=False)
    monkeypatch.setenv("REPLICATE_BASE_URL", "http://127.0.0.1:9911")
    limits = image_generator(load_settings()).delivery_limits()
    assert limits.hosts == ("replicate.delivery", "*.replicate.delivery", "127.0.0.1:9911")
    assert (limits.max_bytes, limits.timeout_s) == (50 * 1024 * 1024, 120.0)
    monkeypatch.delenv("REPLICATE_BASE_URL")
    assert image_generator(load_settings()).delivery_limits().hosts == ("replicate.delivery", "*.replicate.delivery")


@pytest.mark.parametrize(("variable", "value"), [
    ("ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S", "0"), ("ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S", "nan"),
    ("ASSET_PIPELINE_MAX_DOWNLOAD_MB", "-1"), ("ASSET_PIPELINE_MAX_OUTPUT_MEGAPIXELS", "1000"),
])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


def test_a_bad_host_pattern_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_DELIVERY_HOSTS", "https://replicate.delivery/")
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_DELIVERY_HOSTS: 'https://replicate.delivery/' is not"):
        image_generator(load_settings()).delivery_limits()

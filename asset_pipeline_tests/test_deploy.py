"""deploy/: the production instance config loads as a real instance on PostgreSQL, the Kubernetes
variant differs only by its run launcher, and the compose and Kubernetes files name the real
commands and variables (and no secret values)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator

from asset_pipeline.instance_storage import PooledPostgresEventLogStorage
from asset_pipeline_testing.postgres import fresh_database

DEPLOY = Path(__file__).parents[1] / "deploy"


def test_the_instance_config_loads_on_postgresql_with_a_queued_coordinator(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database() as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
        shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
            coordinator = instance.run_coordinator
            assert isinstance(coordinator, QueuedRunCoordinator)
            concurrency = instance.get_concurrency_config()
            assert concurrency.run_queue_config.max_concurrent_runs == 8
            assert concurrency.pool_config.default_pool_limit == 8
            assert instance.run_monitoring_enabled


def test_the_kubernetes_instance_differs_only_by_its_run_launcher() -> None:
    base = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    k8s = yaml.safe_load((DEPLOY / "dagster-k8s.yaml").read_text())
    launcher = k8s.pop("run_launcher")
    assert k8s == base
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert launcher["config"]["env_secrets"] == ["asset-pipeline-secrets"]


def test_compose_runs_the_real_commands_and_holds_no_secret_values() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "code", "webserver", "daemon", "hub"}
    assert services["hub"]["command"].startswith("asset-pipeline hub --host 0.0.0.0")
    environment = services["daemon"]["environment"]
    assert environment["ASSET_PIPELINE_HUB_TOKEN"].startswith("${") and environment["REPLICATE_API_TOKEN"].startswith("${")
    assert environment["ASSET_PIPELINE_PARTITIONS_PER_RUN"] == "50"
    assert "dagster api grpc -m asset_pipeline.definitions" in services["code"]["command"]
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code"


def test_kubernetes_manifests_parse_and_reference_the_secret() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "hub.yaml").read_text()))
    kinds = [document["kind"] for document in documents]
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    container = documents[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["asset-pipeline", "hub"]
    assert {"secretRef": {"name": "asset-pipeline-secrets"}} in container["envFrom"]
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_the_hub_runs_two_replicas_sharing_the_redis_service_in_compose_and_kubernetes() -> None:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    hub = services["hub"]
    assert hub["deploy"]["replicas"] == 2 and "redis" in hub["depends_on"]
    assert urlsplit(hub["environment"]["ASSET_PIPELINE_REDIS_URL"]).hostname == "redis"
    assert services["redis"]["image"].startswith("redis:")
    config, deployment, _service = yaml.safe_load_all((DEPLOY / "k8s" / "hub.yaml").read_text())
    assert deployment["spec"]["replicas"] == 2
    redis_deployment, redis_service = yaml.safe_load_all((DEPLOY / "k8s" / "redis.yaml").read_text())
    assert (redis_deployment["kind"], redis_service["kind"]) == ("Deployment", "Service")
    url = urlsplit(config["data"]["ASSET_PIPELINE_REDIS_URL"])
    assert (url.hostname, url.port) == (redis_service["metadata"]["name"], redis_service["spec"]["ports"][0]["port"])
    assert redis_service["spec"]["selector"] == redis_deployment["spec"]["template"]["metadata"]["labels"]
    assert url.password is None  # a password would belong in the secret, never in a ConfigMap

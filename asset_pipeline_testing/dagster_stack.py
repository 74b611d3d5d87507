"""The real Dagster services for path tests: `dagster-daemon` and `dagster-webserver` on a loopback
port, over one instance and the test code location (asset_pipeline_testing/daemon_location.py), with a
GraphQL client that sends what the UI sends."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.partition_status import PartitionStatuses
from asset_pipeline_testing.daemon import BIN, start_daemon, stop_process_group
from asset_pipeline_testing.helpers import image_statuses, pipeline_defs
from asset_pipeline_testing.serving import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FAILING_FILE_VARIABLE = "ASSET_PIPELINE_TEST_FAILING_FILE"  # read by asset_pipeline_testing/daemon_location.py
LOCATION = "asset_pipeline"
REPOSITORY = "__repository__"
T = TypeVar("T")


@dataclass
class DagsterStack:
    env: dict[str, str]
    home: Path
    failing_file: Path
    url: str | None = None
    logs: list[Path] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def fail(self, *partition_keys: str) -> None:
        """From the next run on, the provider fails exactly these partitions."""
        self.failing_file.write_text("\n".join(partition_keys))

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def image_statuses(self) -> PartitionStatuses:
        """The `images` partition statuses as the UI computes them, from this stack's instance."""
        defs = pipeline_defs(Path(self.env["ASSET_PIPELINE_CATALOG"]), Path(self.env["ASSET_PIPELINE_DATA_DIR"]))
        with self.instance() as instance:
            return image_statuses(defs, instance)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        assert self.url, "the webserver was not started"
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=120)
        response.raise_for_status()
        document = response.json()
        assert not document.get("errors"), document["errors"]
        return document["data"]

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout_s: float = 150) -> T:
        """Poll `probe` until it returns a value; fail naming `what` (and the services' last logs)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value:
                return value
            for process, log in zip(self.processes, self.logs):
                assert process.poll() is None, f"{log.name} exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + self.logs[0].read_text()[-3000:]
            time.sleep(0.5)

    def wait_for_backfill_runs(self, backfill_id: str, ranges: list[tuple[str, str]]) -> list[dg.DagsterRun]:
        """The backfill's runs once it has launched exactly one run per range in `ranges` (first,
        last partition) and all of them have finished. (The backfill daemon wakes every 30 s; its
        own status only turns final on the wake after that, so tests wait for the runs.)"""
        def done():  # type: ignore[no-untyped-def]
            with self.instance() as instance:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            launched = sorted((run.tags["dagster/asset_partition_range_start"],
                               run.tags["dagster/asset_partition_range_end"]) for run in runs)
            assert set(launched) <= set(ranges), f"backfill {backfill_id} launched {launched}, expected {ranges}"
            return runs if launched == sorted(ranges) and all(run.is_finished for run in runs) else None
        return self.wait_for(f"backfill {backfill_id}", done)

    def location_loaded(self) -> bool:
        entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        return any(entry["name"] == LOCATION and entry["loadStatus"] == "LOADED" for entry in entries)

    # What the UI sends ------------------------------------------------------------------------

    def launch_backfill(self, partition_names: list[str], **params: Any) -> str:
        data = self.graphql(LAUNCH_BACKFILL, params={
            "assetSelection": [{"path": IMAGES.path}], "partitionNames": partition_names, "fromFailure": False,
            "tags": [], **params})
        result = data["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def partition_statuses(self) -> dict[str, list[str]]:
        """The `images` partition statuses the UI's partition picker filters on."""
        data = self.graphql(PARTITION_STATUSES, assetKeys=[{"path": IMAGES.path}])
        return data["assetNodes"][0]["assetPartitionStatuses"]

    def start_sensor(self, name: str) -> str:
        selector = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": name}
        result = self.graphql(START_SENSOR, selector=selector)["startSensor"]
        assert result["__typename"] == "Sensor" and result["sensorState"]["status"] == "RUNNING", result
        return result["sensorState"]["id"]

    def stop_sensor(self, state_id: str) -> None:
        result = self.graphql(STOP_SENSOR, id=state_id)["stopSensor"]
        assert result["instigationState"]["status"] == "STOPPED", result

    def start_schedule(self, name: str) -> None:
        selector = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "scheduleName": name}
        result = self.graphql(START_SCHEDULE, selector=selector)["startSchedule"]
        assert result["__typename"] == "ScheduleStateResult", result

    def preview_schedule(self, name: str) -> dict[str, Any]:
        """The UI's "Preview tick result": the schedule evaluated now, nothing launched."""
        selector = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "scheduleName": name}
        result = self.graphql(PREVIEW_SCHEDULE, selector=selector, timestamp=time.time())["scheduleDryRun"]
        assert result["__typename"] == "DryRunInstigationTick", result
        return result["evaluationResult"]

    def ticks(self, kind: str, name: str) -> list[dict[str, Any]]:
        """The newest ticks of a sensor or schedule, as the UI's tick history shows them."""
        key = {"sensor": "sensorName", "schedule": "scheduleName"}[kind]
        selector = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, key: name}
        data = self.graphql(TICKS[kind], selector=selector)
        return data[f"{kind}OrError"][f"{kind}State"]["ticks"]


LOCATIONS = "query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""
PARTITION_STATUSES = """
query Statuses($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions
                                        materializingPartitions }
    }
  }
}"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on PythonError { message }
  }
}"""
STOP_SENSOR = """
mutation Stop($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}"""
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on PythonError { message }
  }
}"""
PREVIEW_SCHEDULE = """
mutation Preview($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { skipReason error { message } runRequests { runKey tags { key value } } }
    }
    ... on PythonError { message }
  }
}"""
_TICK_FIELDS = "status runIds skipReason error { message } logKey"
TICKS = {
    "sensor": "query Ticks($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {"
              " ... on Sensor { sensorState { ticks(limit: 10) { " + _TICK_FIELDS + " } } } } }",
    "schedule": "query Ticks($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {"
                " ... on Schedule { scheduleState { ticks(limit: 10) { " + _TICK_FIELDS + " } } } } }",
}


@contextmanager
def dagster_stack(tmp_path: Path, env: dict[str, str], *, webserver: bool = True) -> Iterator[DagsterStack]:
    """Start the daemon (and the webserver) on `env`'s DAGSTER_HOME; stop them afterwards."""
    failing_file = tmp_path / "failing.txt"
    failing_file.write_text("")
    workspace = tmp_path / "workspace.yaml"
    # The test package is not installed: the code location imports it from the project root.
    workspace.write_text(f"load_from:\n  - python_module:\n      module_name: asset_pipeline_testing.daemon_location\n"
                         f"      location_name: {LOCATION}\n      working_directory: {PROJECT_ROOT}\n")
    env = {**env, FAILING_FILE_VARIABLE: str(failing_file), "ASSET_PIPELINE_MAX_ATTEMPTS": "1",
           "ASSET_PIPELINE_HUB_ENABLED": "false"}
    stack = DagsterStack(env=env, home=Path(env["DAGSTER_HOME"]), failing_file=failing_file)
    webserver_command = None
    if webserver:
        port = free_port()
        stack.url = f"http://127.0.0.1:{port}"
        webserver_command = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    with stack.instance():
        pass  # create (and stamp) the instance's storage once, before three processes race to do it
    try:
        stack.logs.append(tmp_path / "daemon.log")
        stack.processes.append(start_daemon(env=env, workspace=workspace, log=stack.logs[0], cwd=tmp_path))
        if webserver_command:
            log = tmp_path / "webserver.log"
            stack.logs.append(log)
            with log.open("w") as out:
                stack.processes.append(subprocess.Popen(webserver_command, cwd=tmp_path, env=env, stdout=out,
                                                        stderr=subprocess.STDOUT, start_new_session=True))
            stack.wait_for("the webserver", lambda: _answers(f"{stack.url}/server_info"), timeout_s=120)
            stack.wait_for("the webserver to load the code location", stack.location_loaded, timeout_s=120)
        yield stack
    finally:
        for process in stack.processes:
            stop_process_group(process, timeout_s=60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

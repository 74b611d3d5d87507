"""The review loop end to end, as people and operators drive it.

Real services: `dagster-daemon` and `dagster-webserver` (asset_pipeline_testing/dagster_stack.py),
the `asset-pipeline hub` console script with a token, Debian's chromium driven by Playwright. A
person opens the review view, rejects one image with the keyboard; the webserver's GraphQL reports
that partition stale (and only it); `asset-pipeline retry-failed --rejected` submits a backfill
that the daemon runs; the view then shows the new take with the rejected one in its history. The
hub refuses verdicts without the token, verdicts on a replaced image, and hostile bodies; the
`rejected_images_sensor`, turned on in the UI, re-renders a rejection made from the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline_testing.dagster_stack import BIN, DagsterStack, dagster_stack
from asset_pipeline_testing.helpers import materialize, pipeline_defs, small_entries, write_catalog
from asset_pipeline_testing.hub_process import HubProcess, hub_process

PROJECT = Path(__file__).parents[1]
TOKEN = "review-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ASSET_PIPELINE_TEST_ARTIFACTS", PROJECT / "test-artifacts"))
STALE = """
query Stale($assetKeys: [AssetKeyInput!], $partitions: [String!]) {
  assetNodes(assetKeys: $assetKeys) { staleStatusByPartition(partitions: $partitions) }
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    root = tmp_path_factory.mktemp("review_loop")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.sqlite.yaml", home / "dagster.yaml")
    catalog = write_catalog(root / "catalog.yaml", small_entries(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), ASSET_PIPELINE_CATALOG=str(catalog), ASSET_PIPELINE_DATA_DIR=str(root / "data"))
    with dagster_stack(root, env) as running:
        defs = pipeline_defs(catalog, root / "data")
        with running.instance() as instance:
            assert materialize(defs, instance, first="img-00", last="img-03").success
        yield running


@pytest.fixture(scope="module")
def hub(stack: DagsterStack) -> Iterator[HubProcess]:
    ours = {k: v for k, v in stack.env.items() if k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    with hub_process(**{**ours, "ASSET_PIPELINE_HUB_TOKEN": TOKEN}) as running:
        yield running


def cli(stack: DagsterStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "asset-pipeline"), *args], cwd=PROJECT, env=stack.env, capture_output=True,
                          text=True, timeout=300, check=False)


def stale_status(stack: DagsterStack, *keys: str) -> list[str]:
    """What the UI shows: the webserver's stale status of the partitions' `prompts` (the first asset
    below `image_catalog`; `images` follows once its prompt is re-written, see README "Review loop")."""
    data = stack.graphql(STALE, assetKeys=[{"path": PROMPTS.path}], partitions=list(keys))
    return data["assetNodes"][0]["staleStatusByPartition"]


def current_shas(stack: DagsterStack) -> dict[str, str]:
    with stack.instance() as instance:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=IMAGES), limit=100).records
    latest: dict[str, str] = {}
    for record in records:
        latest.setdefault(record.partition_key, record.asset_materialization.metadata["sha256"].value)
    return latest


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (make browser installs it; CI always has it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def test_reject_with_the_keyboard_then_the_daemon_renders_a_new_take(browser, stack: DagsterStack, hub: HubProcess) -> None:
    old = current_shas(stack)
    assert stale_status(stack, "img-00", "img-01") == ["FRESH", "FRESH"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{hub.url}/review?token={TOKEN}")
    page.wait_for_selector("#review-list li[data-partition=img-03]", timeout=20_000)
    assert page.text_content("[data-count=unreviewed]") == "4"
    page.wait_for_selector("#review-main[data-partition=img-00]")
    page.keyboard.press("j")  # next image
    page.wait_for_selector("#review-main[data-partition=img-01]")
    assert page.get_attribute("#review-image", "data-sha256") == old["img-01"]
    assert page.text_content("#review-prompt") == "a test icon number 1"
    page.keyboard.press("n")  # write a note, leave the field, reject
    page.keyboard.type("text artefacts in the corner")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.wait_for_function("document.getElementById('review-message').textContent.includes('take 1 is due')",
                           timeout=20_000)
    page.wait_for_selector("#review-list li[data-partition=img-01]", state="detached")  # left the unreviewed view
    assert page.text_content("[data-count=rejected]") == "1"

    # Dagster's own staleness, as the UI's GraphQL reports it: only the rejected partition.
    assert stale_status(stack, "img-00", "img-01", "img-02") == ["FRESH", "STALE", "FRESH"]

    estimate = json.loads(cli(stack, "estimate", "--select", "rejected", "--json").stdout)
    assert (estimate["partitions"], estimate["to_generate"]) == (1, 1)
    submitted = cli(stack, "retry-failed", "--rejected", "--json")
    assert submitted.returncode == 0, submitted.stderr
    report = json.loads(submitted.stdout)
    assert report["failed"] == ["img-01"] and report["backfill_id"]
    [run] = stack.wait_for_backfill_runs(report["backfill_id"], [("img-01", "img-01")])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    new = current_shas(stack)
    assert new["img-01"] != old["img-01"] and new["img-00"] == old["img-00"]
    assert stale_status(stack, "img-01") == ["FRESH"]

    page.keyboard.press("1")  # all images
    page.click("#review-list li[data-partition=img-01]")
    page.wait_for_selector(f"#review-image[data-sha256='{new['img-01']}']")
    assert page.text_content("#review-take") == "take 1"
    assert page.text_content("#review-state") == "unreviewed"  # the rejection stayed with the old image
    page.wait_for_selector(f"#history li[data-sha256='{old['img-01']}'][data-take='0'][data-state=rejected]")
    page.wait_for_selector(f"#history li[data-sha256='{new['img-01']}'][data-take='1'][data-state=unreviewed]")
    old_thumb = page.query_selector(f"#history li[data-sha256='{old['img-01']}'] img")
    page.wait_for_function("img => img.complete && img.naturalWidth === 96", arg=old_thumb, timeout=10_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)


def test_the_hub_refuses_verdicts_without_the_token_and_hostile_ones(stack: DagsterStack, hub: HubProcess) -> None:
    shas = current_shas(stack)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = {"sha256": shas["img-02"], "decision": "approved", "note": "fine"}
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        counts = client.get("/api/reviews", headers=bearer).json()["counts"]
        assert client.get("/api/reviews").status_code == 401  # reading needs it too, as the other routes do
        assert client.post("/api/reviews/img-02", json=body).status_code == 401
        assert client.post("/api/reviews/img-02", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        hostile = [
            ("img-02", {**body, "sha256": "0" * 64}, 409, "sha256"),  # an unknown image
            ("img-99", body, 404, "partition_key"),
            ("Not_A-Key!", body, 400, "partition_key"),
            ("img-02", {**body, "note": "x" * 3000}, 400, "note"),
            ("img-02", {**body, "decision": "maybe"}, 400, "decision"),
            ("img-02", {**body, "sha256": None}, 400, "sha256"),
            ("img-02", {**body, "note": {"$ne": 1}}, 400, "note"),
            ("img-02", {**body, "prompt_addition": "bidi \u202e"}, 400, "prompt_addition"),
        ]
        for key, document, status, field in hostile:
            answer = client.post(f"/api/reviews/{key}", json=document, headers=bearer)
            assert (answer.status_code, answer.json().get("field")) == (status, field), (key, answer.text)
        assert client.post("/api/reviews/img-02", content=b"{not json", headers=bearer).status_code == 400
        assert client.post("/api/reviews/img-02", content=b"[]", headers=bearer).status_code == 400
        assert client.post("/api/reviews/img-02", content=b"x" * 1_000_000, headers=bearer).status_code == 413
        assert client.post("/api/reviews/img-02", content=b"[" * 100_000, headers=bearer).status_code == 413
        assert client.get("/api/reviews", params={"state": "nope"}, headers=bearer).status_code == 400
        assert client.get("/review-objects/../../etc/passwd", headers=bearer).status_code == 404
        assert client.get("/review-objects/" + "0" * 64, headers=bearer).status_code == 404
        assert client.get("/api/reviews", headers=bearer).json()["counts"] == counts  # nothing was recorded

        answer = client.post("/api/reviews/img-02", json=body, headers=bearer)
        assert answer.status_code == 200 and answer.json()["decision"] == "approved"
        approved = client.get("/api/reviews", params={"state": "approved"}, headers=bearer).json()["items"]
        assert [item["partition_key"] for item in approved] == ["img-02"]


def test_a_verdict_on_a_replaced_image_is_refused(stack: DagsterStack, hub: HubProcess) -> None:
    """img-01's take 0 was rejected and replaced by take 1 in the first test: naming it now is a 409."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    history = httpx.get(f"{hub.url}/api/reviews/img-01/history", headers=bearer).json()["history"]
    if len(history) < 2:
        pytest.skip("needs the re-render of the first test")
    replaced = history[1]["sha256"]
    answer = httpx.post(f"{hub.url}/api/reviews/img-01", headers=bearer,
                        json={"sha256": replaced, "decision": "approved"})
    assert answer.status_code == 409 and "not the current image" in answer.json()["error"]
    current = httpx.get(f"{hub.url}/api/reviews", headers=bearer).json()["items"]
    assert {item["partition_key"]: item["state"] for item in current}["img-01"] == "unreviewed"


def test_the_rejected_images_sensor_renders_a_cli_rejection(stack: DagsterStack) -> None:
    before = current_shas(stack)["img-03"]
    rejected = cli(stack, "review", "reject", "img-03", "--note", "off-style", "--json")
    assert rejected.returncode == 0, rejected.stderr
    assert stale_status(stack, "img-03") == ["STALE"]
    state_id = stack.start_sensor("rejected_images_sensor")
    try:
        stack.wait_for("the sensor's new take", lambda: current_shas(stack)["img-03"] != before or None)
    finally:
        stack.stop_sensor(state_id)
    [tick] = [t for t in stack.ticks("sensor", "rejected_images_sensor") if t["status"] == "SUCCESS"]
    assert tick["runIds"]
    assert stale_status(stack, "img-03") == ["FRESH"]
    listed = json.loads(cli(stack, "review", "list", "--json").stdout)
    item = {i["partition_key"]: i for i in listed["items"]}["img-03"]
    assert (item["take"], item["state"]) == (1, "unreviewed")

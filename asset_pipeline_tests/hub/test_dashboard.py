"""The dashboard page in headless Chromium (Debian's, driven by Playwright; nothing downloaded).

A real hub, a real Dagster run on the diffusers backend publishing every denoising step: the page
connects, shows the partition's bar moving, then the stored image in the gallery; it reconnects
after the hub drops it. The screenshot is kept in test-artifacts/dashboard.png. After a hub restart
the page takes the new process's gap snapshot and pages in the partitions it left out.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from asset_pipeline.hub.server import HubConfig
from asset_pipeline.hub.state import HubState
from asset_pipeline.progress.messages import PUBLISHED
from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_testing.hub_process import progress, running_hub
from asset_pipeline_testing.serving import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ASSET_PIPELINE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make browser installs it; CI always has it)",
)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def test_the_page_shows_a_moving_bar_then_the_image(browser, tmp_path: Path, data_dir: Path, instance,
                                                     tiny_sdxl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_HUB_TOKEN", "page-token")
    catalog = write_catalog(tmp_path / "c.yaml", [
        {"id": "hero-live", "category": "hero", "prompt": "a lighthouse at dusk", "width": 128, "height": 128,
         "steps": 40, "seed": 3},
    ])
    with running_hub(HubConfig(token="page-token", image_root=data_dir)) as hub:
        page = browser.new_page(viewport={"width": 390, "height": 844})  # phone-sized
        page.goto(f"{hub.url}/?token=page-token")
        page.wait_for_selector("#connection-status[data-state=connected]", timeout=10_000)

        defs = pipeline_defs(catalog, data_dir, hub_url=hub.url, backend="diffusers",
                             diffusers_model=str(tiny_sdxl.base))
        result: list = []
        run = threading.Thread(target=lambda: result.append(materialize(defs, instance, partition="hero-live")))
        try:
            run.start()
            row = page.wait_for_selector("li[data-partition=hero-live][data-status=generating]", timeout=60_000)
            widths = set()
            for _ in range(200):
                width = page.eval_on_selector("li[data-partition=hero-live] .bar > span", "e => e.style.width")
                widths.add(width)
                if len(widths) >= 3 or row.get_attribute("data-status") != "generating":
                    break
                page.wait_for_timeout(50)
            detail = page.text_content("li[data-partition=hero-live] .detail")
        finally:
            run.join(timeout=120)
        assert result and result[0].success
        assert len(widths) >= 3, widths  # the bar moved
        assert "base" in detail and "/40" in detail
        page.wait_for_selector("li[data-partition=hero-live][data-status=completed]", timeout=10_000)
        image = page.wait_for_selector("#gallery img[data-partition=hero-live]", timeout=10_000)
        page.wait_for_function("img => img.complete && img.naturalWidth === 128", arg=image, timeout=10_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        for subscriber in list(hub.hub.subscribers):  # the hub drops the page: it reconnects and resumes
            hub.hub.subscribers.disconnect(subscriber, 1013, "test")
        page.wait_for_selector("#connection-status[data-state=reconnecting]", timeout=10_000)
        page.wait_for_selector("#connection-status[data-state=connected]", timeout=20_000)
        page.click("#theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_the_page_follows_a_hub_restart_and_pages_in_what_a_snapshot_left_out(browser) -> None:
    """The restarted hub numbers *below* the old one (a clock set back): the page must take the gap
    snapshot's seq and hub_id, not keep asking with the old seq."""
    port = free_port()
    with running_hub(state=HubState(seq=10**12), port=port) as first:
        page = browser.new_page()
        page.goto(first.url + "/")
        page.wait_for_selector("#connection-status[data-state=connected]", timeout=10_000)
        first.hub.publish([PUBLISHED.validate_python(progress("before-restart", percentage=40))])
        page.wait_for_selector("li[data-partition=before-restart]", timeout=10_000)
    page.wait_for_selector("#connection-status[data-state=reconnecting]", timeout=10_000)

    restarted = HubState(seq=1000, snapshot_partitions=2)
    for index in range(5):  # what the new process rebuilt; the snapshot carries only 2 of them
        restarted.remember_partition(f"rebuilt-{index}", status="completed")
    with running_hub(state=restarted, port=port) as second:
        for index in range(5):
            page.wait_for_selector(f"li[data-partition=rebuilt-{index}]", timeout=20_000)
        assert second.hub.status()["gap_snapshots"] == 1
        second.hub.publish([PUBLISHED.validate_python(progress("after-restart", percentage=70))])
        page.wait_for_selector("li[data-partition=after-restart]", timeout=10_000)
        for subscriber in list(second.hub.subscribers):  # dropped again: it resumes by the new seq
            second.hub.subscribers.disconnect(subscriber, 1013, "test")
        page.wait_for_selector("#connection-status[data-state=reconnecting]", timeout=10_000)
        page.wait_for_selector("#connection-status[data-state=connected]", timeout=20_000)
        deadline = time.monotonic() + 5
        while second.hub.status()["connections"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert second.hub.status()["gap_snapshots"] == 1  # a replay, not another gap

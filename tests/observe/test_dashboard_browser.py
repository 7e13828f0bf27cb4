"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Set FBP_DASHBOARD_SCREENSHOT=PATH to also save the screenshot there (how the README's
picture, docs/img/dashboard.png, is made).
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (.ci/run installs it)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

GRAPH = """
'0' -> FRAMES Sim(detector/Simulate)
'eiger2-1m' -> MODEL Sim
'6' -> RATE Sim
'0.5' -> HIT_RATE Sim
Sim OUT -> IN Find(xray/PeakFinder:workers=2) OUT -> IN Hits(xray/HitFilter)
Hits OUT -> IN Drop(core/Drop)
Find PEAKS -> IN Say(observed/Announce) OUT -> IN Sink(core/Drop)
"""


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,  # Playwright gives it a fresh, empty profile
        )
        try:
            yield browser
        finally:
            browser.close()


def _sim_out(page) -> int:
    text = page.locator("#row-Sim td").nth(5).inner_text()
    return int(text.replace(",", "") or 0)


@pytest.mark.timeout(120)
def test_dashboard_renders_updates_previews_and_needs_the_token(network, browser, tmp_path):
    running = network(GRAPH, "--ui")
    entry = running.entry
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{entry['url']}/?token={entry['token']}")

    # the graph renders: one box per process, one path per connection
    page.wait_for_selector(".process", timeout=20_000)
    assert page.locator(".process").count() == 6
    assert page.locator(".edge").count() == 5
    page.wait_for_function("document.getElementById('run-state').textContent === 'running'")
    page.wait_for_selector("#row-Sim", timeout=20_000)
    assert "detector/Simulate" in page.locator("#row-Sim").inner_text()

    # numbers move
    first = _sim_out(page)
    page.wait_for_function(
        "(old) => Number(document.querySelectorAll('#row-Sim td')[5]"
        ".textContent.replace(/,/g, '')) > old",
        arg=first,
        timeout=20_000,
    )

    # each connection shows how long packets waited in it, in the table and the tooltip
    page.wait_for_function(
        "[...document.querySelectorAll('#connections tbody tr')].some("
        "(row) => /[µm]?s$/.test(row.cells[7].textContent))",
        timeout=20_000,
    )
    assert "latency p50" in page.locator("#connections thead").inner_text()
    tooltip = page.locator(".edge title").first.text_content()
    assert "p50" in tooltip and "p99" in tooltip and "click to preview" in tooltip

    # watch the frames: the preview image is drawn and then updated with a new sample
    page.locator(".edge[data-connection]").first.click()
    page.wait_for_selector("#preview-image", state="visible", timeout=30_000)
    info = page.locator("#preview-info").inner_text()
    assert "1062 × 1028 frame" in info
    page.wait_for_function(
        "(old) => document.getElementById('preview-info').textContent !== old",
        arg=info,
        timeout=30_000,
    )
    spread = page.evaluate(
        """() => {
            const c = document.getElementById('preview-image');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lo = 255, hi = 0;
            for (let i = 0; i < d.length; i += 4) {
                lo = Math.min(lo, d[i + 1]);
                hi = Math.max(hi, d[i + 1]);
            }
            return hi - lo;
        }"""
    )
    assert spread > 50  # a real picture, not a blank canvas

    # a peak-table connection shows numbers over time, including the hit rate
    peaks = page.locator(".edge", has_text="PEAKS → IN")
    peaks.first.click()
    page.wait_for_selector("#preview-scalars", state="visible", timeout=30_000)
    page.wait_for_function(
        "document.getElementById('preview-scalars').textContent.includes('hit rate')",
        timeout=30_000,
    )
    # a component's own preview is listed
    page.wait_for_function(
        "document.getElementById('published').textContent.includes('Say/latest')",
        timeout=30_000,
    )

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("FBP_DASHBOARD_SCREENSHOT"):
        target = pathlib.Path(os.environ["FBP_DASHBOARD_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)

    # without the token: refused, also for the page itself
    stranger = browser.new_page()
    response = stranger.goto(f"{entry['url']}/")
    assert response.status == 401
    assert "needs its token" in stranger.content()
    status, _, err = running.stop()
    assert status == 130, err

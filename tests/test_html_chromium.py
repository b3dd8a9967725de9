"""The standalone HTML report in a real browser: headless Chromium, driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: no port, no websocket library).

Checks what a reader relies on: nothing is fetched from the network, no script error or console
error, every chart drew its marks at a visible size, the recommendations come first, sorting and
filtering work, and the page prints.  The screenshot (and PDF) land in ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.report.html_report import write_html

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_reports import CHART_IDS, full_report

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium); the HTML report's "
    "browser check needs it",
)


class DevTools:
    """A minimal DevTools-protocol client over Chromium's pipe (NUL-separated JSON messages)."""

    def __init__(self, profile_dir: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The browser reads commands on fd 3 and writes replies on fd 4; bash (unlike dash)
        # redirects from descriptors above 9, which is where ours are.
        shell = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", shell, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


PAGE_PROBE = """
(() => {
  const top = (sel) => { const el = document.querySelector(sel); return el ? el.getBoundingClientRect().top : null; };
  const charts = Array.from(document.querySelectorAll("svg.chart")).map((svg) => {
    const box = svg.getBoundingClientRect();
    const vb = svg.viewBox.baseVal;
    const legendsOut = Array.from(svg.querySelectorAll(".legend-item")).filter((g) => {
      const b = g.getBBox();
      return b.x < 0 || b.y < 0 || b.x + b.width > vb.width || b.y + b.height > vb.height;
    }).map((g) => g.textContent);
    return { id: svg.dataset.chart, empty: svg.dataset.empty === "true", width: box.width, height: box.height,
             marks: svg.querySelectorAll(".mark").length, legendsOut };
  });
  const table = document.getElementById("results-table");
  const header = Array.from(table.tHead.rows[0].cells).findIndex((th) => th.textContent.trim() === "t/s");
  table.tHead.rows[0].cells[header].click();
  table.tHead.rows[0].cells[header].click();
  const sorted = Array.from(table.tBodies[0].rows).map((row) => row.cells[header].getAttribute("data-sort"));
  const rating = document.getElementById("filter-rating");
  rating.value = "acceptable";
  rating.dispatchEvent(new Event("change"));
  const visible = Array.from(table.tBodies[0].rows).filter((row) => !row.hidden).map((row) => row.dataset.rating);
  rating.value = "";
  rating.dispatchEvent(new Event("change"));
  return { charts, sorted, visible,
           recommendations: top("#recommendations"), matrix: top("#matrix"), chartsTop: top("#charts"),
           scripts: document.scripts.length, title: document.title };
})()
"""


def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    page = write_html(
        enrich_report(full_report(divergence=True, serving=True, finetune=True)),
        tmp_path / "llmbench-report.html",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 2400, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired")
        probe = browser.send(
            "Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True}, session=session
        )
        assert "exceptionDetails" not in probe, probe
        found = probe["result"]["value"]
        shot = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": False},
            session=session,
        )
        screenshot = ARTIFACTS / "llmbench-report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        pdf = browser.send(
            "Page.printToPDF", {"printBackground": True}, session=session, timeout=60
        )
        printed = ARTIFACTS / "llmbench-report.pdf"
        printed.write_bytes(base64.b64decode(pdf["data"]))
    finally:
        browser.close()

    requests = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert all(url.startswith(("file:", "data:")) for url in requests), (
        f"fetched from the network: {requests}"
    )
    errors = [
        e["params"]
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (
            e.get("method") == "Runtime.consoleAPICalled"
            and e["params"].get("type") in ("error", "assert")
        )
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == [], f"console errors: {errors}"

    charts = {c["id"]: c for c in found["charts"]}
    assert set(charts) == set(CHART_IDS)
    for chart in charts.values():
        assert not chart["empty"], f"{chart['id']} has no data"
        assert chart["marks"] > 0, f"{chart['id']} drew no marks"
        assert chart["width"] > 300 and chart["height"] > 150, (
            f"{chart['id']} is not visible: {chart}"
        )
        assert chart["legendsOut"] == [], f"{chart['id']}: legend cut at the SVG's edge"
    assert found["recommendations"] < found["matrix"] < found["chartsTop"], (
        "recommendations must come first"
    )
    tps = [float(v) for v in found["sorted"] if v]
    assert tps == sorted(tps, reverse=True), "clicking t/s twice sorts descending"
    assert found["visible"] and set(found["visible"]) == {"acceptable"}, found["visible"]
    assert screenshot.stat().st_size > 10_000
    assert printed.read_bytes().startswith(b"%PDF")

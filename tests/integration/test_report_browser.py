"""The HTML report in a real browser: every image loads, nothing overflows its container, the page uses its width.

A report is rendered from synthetic results (a chat metric at the axis floor, two metrics equal in every
cell, a training card with its loss curve) and opened in headless Chromium, driven over the Chrome
DevTools protocol with a minimal client (one websocket, `websockets`' sync API). The script it runs
reads the laid-out page, so it checks what a reader sees, not what the HTML says.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from flows.aggregate import aggregate
from flows.config import ReportConfig, load_config
from flows.figures import render_figures
from flows.report import render_report
from tests.unit.flows.conftest import REPO, make_records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it: .ci/run; here: apt-get install chromium)"
)

# Runs in the page once it has loaded: waits for every image to decode, then reports what was laid out.
# Content inside a scroll container (wide tables, <pre>) may overflow it by design; the container may not.
CHECK_PAGE = """
(async () => {
  const images = [...document.images];
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className ? "." + String(el.className).trim().replace(/\\s+/g, ".") : "");
  const overflowing = [];
  for (const el of document.body.querySelectorAll("*")) {
    const parent = el.parentElement;
    if (el.closest("details:not([open])") || (parent.closest(".scroll, pre"))) continue;
    const box = el.getBoundingClientRect(), outer = parent.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const style = getComputedStyle(el);
    if (box.right > outer.right + 1 || box.left < outer.left - 1)
      overflowing.push(`${name(el)} [${Math.round(box.left)}, ${Math.round(box.right)}] in ${name(parent)} ` +
                       `[${Math.round(outer.left)}, ${Math.round(outer.right)}]`);
    else if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !["auto", "scroll"].includes(style.overflowX))
      overflowing.push(`${name(el)} scrolls ${el.scrollWidth} px in ${el.clientWidth}`);
  }
  return {
    images: images.map(img => ({alt: img.alt, complete: img.complete, natural: img.naturalWidth,
                                shown: img.getBoundingClientRect().width,
                                room: img.parentElement.getBoundingClientRect().width})),
    overflowing,
    page: document.documentElement.scrollWidth,
    body: document.body.getBoundingClientRect().width,
    viewport: window.innerWidth,
  };
})()
"""


class Page:
    """One Chromium tab over CDP: send a command, wait for its answer (events in between are kept)."""

    def __init__(self, url: str) -> None:
        self._ws = connect(url, max_size=None, open_timeout=20)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def open(self, url: str, width: int, height: int = 1000) -> None:
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def screenshot(self, width: int) -> bytes:
        """The full page as PNG, `width` CSS pixels wide."""
        height = self.send("Page.getLayoutMetrics")["cssContentSize"]["height"]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=int(height), deviceScaleFactor=1,
                  mobile=False)  # fmt: skip
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self._ws.close()


def chromium_page(profile: Path) -> Iterator[Page]:
    """Headless Chromium on a free DevTools port, yielding its first tab; the browser is stopped after."""
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(match.group(1)) if match else None
        if port is None:
            raise RuntimeError("chromium did not print its DevTools address within 30 s")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            target = next(t for t in json.load(answer) if t["type"] == "page")
        page = Page(target["webSocketDebuggerUrl"])
        try:
            yield page
        finally:
            page.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def report_records():
    same = lambda mix, lang, item, seed, rng: float((item + seed) % 3 == 0)  # noqa: E731
    records = make_records(mixes=("mono", "multi-2", "multi-3"), languages=("en", "es", "ru", "de"), n_items=6)
    for metric in ("lang_match", "tgt_lang"):  # equal item for item: one chart
        records += make_records(task="chat", metric=metric, languages=("en", "es", "ru"), n_items=6, value=same)
    # Helpfulness 1 (the axis floor) for es: drawn as a tick on the axis.
    floor = lambda mix, lang, item, seed, rng: 1.0 if lang == "es" else float(1 + item % 6)  # noqa: E731
    records += make_records(task="chat", metric="helpfulness", languages=("en", "es", "ru"), n_items=6, value=floor)
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    smoke_cfg = load_config(REPO / "configs" / "smoke.yaml")
    result = aggregate(report_records(), ReportConfig(bootstrap_samples=100))
    figures = render_figures(smoke_cfg, result.rows, out / "figures", formats=["svg", "png"])
    curve = [{"step": s, "loss": 10.4 - 0.3 * s, "learning_rate": 1e-5, "epoch": s / 40} for s in range(1, 9)]
    long_uri = "file:///" + "very/long/path/" * 12 + "data.jsonl"  # must wrap, not widen the page
    card = {"job_id": "job-1", "final_loss": 8.0, "hyperparameters": {"lora_r": 64, "learning_rate": 1e-5},
            "dataset": {"rows": 160, "uri": long_uri}, "loss_curve": curve}  # fmt: skip
    manifests = {"multi-2": {"rows": 160, "languages": {"en": 140, "es": 20}}}
    paths = render_report(smoke_cfg, result.rows, result.tests, figures, manifests, {"m/multi-2": card}, out,
                          versions=[("python", "3.11")], outcomes=result.outcomes)  # fmt: skip
    return paths["html"]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[Page]:
    yield from chromium_page(tmp_path_factory.mktemp("chromium-profile"))


@pytest.mark.parametrize("width", [1600, 420])
def test_every_image_loads_and_nothing_overflows(page, report, width):
    page.open(report.as_uri(), width)
    state = page.evaluate(CHECK_PAGE)
    # Figures: helpfulness, lang_match = tgt_lang (one chart), xnli accuracy, the agreement heatmap (mix ×
    # language); and the card's loss curve.
    assert len(state["images"]) == 5, [image["alt"] for image in state["images"]]
    for image in state["images"]:
        assert image["complete"] and image["natural"] > 0, image
        assert image["shown"] <= image["room"] + 1, image  # scaled to fit, never cropped
    assert state["overflowing"] == []
    assert state["page"] <= state["viewport"]  # no sideways scrolling of the page itself
    assert state["body"] >= 0.95 * state["viewport"]  # the page uses the window's width


def test_coinciding_metrics_share_one_captioned_chart(page, report):
    page.open(report.as_uri(), 1200)
    captions = page.evaluate("[...document.querySelectorAll('figcaption')].map(c => c.innerText)")
    merged = [c for c in captions if "Reply in the prompt's language = Reply in the target language" in c]
    assert len(merged) == 1 and "one chart shows both" in merged[0]
    tables = page.evaluate("[...document.querySelectorAll('#cards table caption')].map(c => c.innerText)")
    assert tables == ["run", "hyperparameters", "dataset"]

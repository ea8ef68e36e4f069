"""A headless Chromium from the system packages, driven over the DevTools protocol (no network).

``open_page(path)`` loads a local HTML file in a fresh browser profile with page scripts
disabled, and returns what the page did: console errors, exceptions, every request that was
not for a local file, the visible text of chosen elements, and a full-page PNG screenshot.
Only ``websocket-client`` is needed besides ``/usr/bin/chromium``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = os.environ.get("QPROBE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-port=0")
READY_LIMIT_S = 120.0  # start-up on a loaded 2-core machine; only a ceiling, never a race
LOCAL_SCHEMES = ("file:", "data:", "about:")


def available() -> str | None:
    """None when the browser tests can run, else why not (websocket-client is a dev dependency: its
    absence is an error, not a reason to skip)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing and could not be installed (.ci/run runs apt-get install chromium)"
    return None


@dataclass
class PageResult:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    visible: dict[str, dict[str, Any]] = field(default_factory=dict)
    screenshot: bytes = b""
    scripts: int = 0


class _Session:
    def __init__(self, ws: Any, session_id: str | None = None) -> None:
        self.ws, self.session_id, self.next_id = ws, session_id, 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session_id:
            msg["sessionId"] = self.session_id
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = json.loads(self.ws.recv())
            self.events.append(e)
            if e.get("method") == method:
                return e


def _endpoint(profile: Path, proc: subprocess.Popen[bytes]) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + READY_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} before it was ready")
        if port_file.exists():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise RuntimeError(f"chromium did not open its DevTools port within {READY_LIMIT_S} s")


def _errors(events: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", ())))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", ""))
    return out


_VISIBLE_JS = """(() => { const out = {}; for (const sel of %s) { const el = document.querySelector(sel);
  if (!el) { out[sel] = null; continue; } const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
  out[sel] = {text: el.innerText, width: r.width, height: r.height, top: r.top + window.scrollY,
              shown: r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'}; }
  out.__scripts = document.scripts.length; return out; })()"""


def open_page(path: Path, selectors: Sequence[str] = (), width: int = 1200) -> PageResult:
    """Load ``path`` (scripts off), check ``selectors``' visibility, take a full-page screenshot."""
    profile = Path(tempfile.mkdtemp(prefix="qprobe-chromium-"))
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ws = websocket.create_connection(_endpoint(profile, proc), timeout=READY_LIMIT_S, suppress_origin=True)
        browser = _Session(ws)
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = _Session(ws, browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setScriptExecutionDisabled", {"value": True})
        page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False})
        page.send("Page.navigate", {"url": path.resolve().as_uri()})
        page.wait_for("Page.loadEventFired")
        got = page.send("Runtime.evaluate", {"expression": _VISIBLE_JS % json.dumps(list(selectors)),
                                             "returnByValue": True})["result"]["value"]
        height = int(page.send("Page.getLayoutMetrics")["cssContentSize"]["height"]) + 1
        page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        shot = page.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        ws.close()
        events = page.events + browser.events
        requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        return PageResult(_errors(events), [u for u in requests if not u.startswith(LOCAL_SCHEMES)],
                          {k: v for k, v in got.items() if k != "__scripts"}, base64.b64decode(shot),
                          int(got["__scripts"]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)

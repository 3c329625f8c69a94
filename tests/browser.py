"""A real headless Chromium, driven over the DevTools protocol: load a page, collect console errors and network
requests, read the title, take a screenshot."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1400,2000"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_page(url: str, screenshot: Path, timeout: float = 60, evaluate: dict[str, str] | None = None) -> dict:
    """``evaluate``: more JavaScript expressions to read from the loaded page, returned by name under ``values``."""
    import websocket

    profile = tempfile.mkdtemp(prefix="fm5-chromium-")
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.time() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        # no Origin header: Chromium refuses DevTools connections from origins not named in --remote-allow-origins
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        counter = iter(range(1, 10**6))
        events = []

        def call(method, **params):
            msg_id = next(counter)
            ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == msg_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
                events.append(msg)

        for domain in ("Runtime", "Log", "Network", "Page"):
            call(f"{domain}.enable")
        call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(json.loads(ws.recv()))
        time.sleep(0.5)  # let late scripts or image errors surface
        title = call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
        rows = call("Runtime.evaluate", expression="document.querySelectorAll('#questions tbody tr').length",
                    returnByValue=True)["result"]["value"]
        # how far the widest table reaches past the window's right edge (<= 0: everything fits)
        overflow = call("Runtime.evaluate", returnByValue=True, expression=(
            "Math.max(...Array.from(document.querySelectorAll('table'), t => t.getBoundingClientRect().right))"
            " - document.documentElement.clientWidth"))["result"]["value"]
        values = {name: call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value")
                  for name, js in (evaluate or {}).items()}
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        ws.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    errors = [e for e in events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return {"title": title, "errors": errors, "requests": requests, "question_rows": rows, "overflow": overflow,
            "values": values}

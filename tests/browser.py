"""A headless Chromium driven over the Chrome DevTools Protocol, with the standard library only.

Used by tests/e2e/test_ui_browser.py to look at `suite ui` as a user does: Chromium (the Debian package `chromium`)
is started with `--remote-debugging-port=0`, the port it picked is read from `DevToolsActivePort` in its
profile folder, and one page is driven through a WebSocket (RFC 6455, written out here: no browser-automation
package is a dependency). What the tests need and no more: navigate, evaluate JavaScript, wait until a
condition holds in the page, click, take a PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian: `chromium`), None without one."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class WebSocket:
    """A client WebSocket on a plain TCP connection: text frames out (masked, as a client must), whole
    messages in (fragments joined, pings answered)."""

    def __init__(self, url: str, timeout: float = 60.0):
        assert url.startswith("ws://"), url
        host_port, _, path = url[len("ws://"):].partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the browser closed the connection during the WebSocket handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket handshake refused: {status.decode(errors='replace')}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("the browser closed the WebSocket")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def receive(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the WebSocket")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:  # the final fragment
                    return message.decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    """One headless Chromium with one page (a tab) of `width` x `height` CSS pixels."""

    def __init__(self, executable: str, width: int = 1400, height: int = 900, timeout: float = 60.0):
        self.profile = Path(tempfile.mkdtemp(prefix="suite-chromium-"))
        self.log = open(self.profile / "chromium.log", "w+b")
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        try:
            port = self._devtools_port(timeout)
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = WebSocket(page["webSocketDebuggerUrl"], timeout=timeout)
            self.next_id = 0
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.exists():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError(f"Chromium did not start (exit {self.proc.poll()}):\n"
                           f"{self.log.read().decode(errors='replace')[-3000:]}")

    def call(self, method: str, **params):
        """Send one CDP command and return its result (events arriving meanwhile are dropped)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:200]!r}: "
                               f"{result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        """Load `url` as a new tab would: through about:blank, so that a link into the same single-page app
        (another `#/...` of the same address) loads the app afresh instead of changing its route."""
        self.call("Page.navigate", url="about:blank")
        self.wait_for("location.href === 'about:blank' && document.readyState === 'complete'", 30, "about:blank")
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 60.0, what: str | None = None):
        """Poll until the expression is truthy in the page; return its value. TimeoutError names `what` and
        shows the start of the page's text."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is navigating
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.text()[:2000]
                raise TimeoutError(f"waited {timeout:g} s for {what or expression}; the page shows:\n{text}")
            time.sleep(0.25)

    def text(self) -> str:
        try:
            return self.evaluate("document.body ? document.body.innerText : ''") or ""
        except RuntimeError:
            return ""

    def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        """Wait until every string is in the page's visible text; return that text."""
        js = json.dumps(list(needles))
        self.wait_for(f"(() => {{ const t = document.body ? document.body.innerText : ''; "
                      f"return {js}.every(n => t.includes(n)); }})()", timeout, what=f"the text {list(needles)}")
        return self.text()

    def click_text(self, text: str, selector: str = "button, a, [role=tab], [role=menuitem], label, span") -> None:
        """Click the first element matching `selector` whose own visible text is exactly `text`."""
        ok = self.evaluate(
            f"(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText && e.innerText.trim() === {json.dumps(text)}); "
            f"if (!el) return false; el.click(); return true; }})()")
        if not ok:
            raise LookupError(f"no element with the text {text!r} to click; the page shows:\n{self.text()[:2000]}")

    def click(self, selector: str) -> bool:
        """Click the first element matching the CSS selector; False when there is none."""
        return bool(self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); "
                                  f"if (!el) return false; el.click(); return true; }})()"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""A small client of headless Chromium over the DevTools protocol (`--remote-debugging-pipe`): open a page, collect
console errors, evaluate expressions, take a screenshot. No dependency beyond the standard library.

The pipe protocol: the browser reads JSON commands, each ended by a NUL byte, on its fd 3 and writes replies and
events the same way on its fd 4.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: The flags the project runs Chromium with (offline, no first-run work, no sandbox inside CI containers).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
#: How long one protocol exchange may take before the test fails (a hung browser must not hang the suite).
REPLY_TIMEOUT = 60.0
WINDOW = (1400, 1000)
#: The descriptors the browser reads commands from and writes replies to.
PIPE_IN = 3
PIPE_OUT = 4
#: Temporary copies of the pipe ends live at or above this descriptor.
HIGH_FD = 10


class BrowserError(Exception):
    """The browser did not answer, or answered with an error."""


class Chromium:
    """One headless Chromium process, one page (tab) attached in flat mode."""

    def __init__(self, profile_dir: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # The child must find the pipe ends at fd 3 and 4. Copies above HIGH_FD cannot collide with 3 and 4 while
        # being moved there; they are the only inheritable descriptors (PEP 446), so close_fds can stay off.
        child_read = fcntl.fcntl(commands_read, fcntl.F_DUPFD, HIGH_FD)
        child_write = fcntl.fcntl(replies_write, fcntl.F_DUPFD, HIGH_FD)
        os.set_inheritable(child_read, True)
        os.set_inheritable(child_write, True)

        def place_pipes() -> None:
            os.dup2(child_read, PIPE_IN)
            os.dup2(child_write, PIPE_OUT)

        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the browser; closed in close()
        try:
            self._process = subprocess.Popen(
                [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                close_fds=False,
                preexec_fn=place_pipes,
            )
        finally:
            for descriptor in (commands_read, replies_write, child_read, child_write):
                os.close(descriptor)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    # -- protocol ------------------------------------------------------------------------------------------------

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        """Wait until the page reports `event` (e.g. `Page.loadEventFired`)."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        for seen in self.events:
            if seen["method"] == event:
                self.events.remove(seen)
                return seen
        while True:
            reply = self._receive(deadline)
            if reply.get("method") == event:
                return reply
            if "method" in reply:
                self.events.append(reply)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError(f"no answer from Chromium within {REPLY_TIMEOUT} s; stderr:\n{self.stderr()}")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium closed the pipe; stderr:\n{self.stderr()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        decoded: dict[str, Any] = json.loads(raw)
        return decoded

    # -- what the tests use ------------------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate the page and wait until it has loaded."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        reply = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def console_errors(self) -> list[str]:
        """Errors the page reported since it was opened: console errors, uncaught exceptions, CSP violations."""
        self.evaluate("0")  # a round trip, so that events emitted during loading have arrived
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args", []))[:500])
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", "")[:500])
        return errors

    def screenshot(self, path: Path, whole_page: bool = True) -> None:
        """A PNG of the whole page (beyond the window) or of the window only, written to `path`."""
        reply = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=whole_page)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(reply["data"]))

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        with contextlib.suppress(BrowserError):  # a browser that already went away needs no closing
            self.call("Browser.close")
        try:
            self._process.wait(timeout=REPLY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._stderr.close()

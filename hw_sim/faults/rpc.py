"""Processes the fault harness can really kill: commanded in JSON lines on stdin, answering on stdout.

The harness needs central and the agent in processes of their own, because `kill -9` is only a fault when it
ends a process (threads in the harness's own process cannot be killed half-way through a write). A child
says `{"kind": "ready", ...}` once it is up, answers each command with one `{"kind": "reply", ...}` line
in order, and may say `{"kind": "event", ...}` at any time (the agent reports every event it journaled).
Logs go to a file (stderr), never to stdout, which is the channel.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

READY_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 120.0

Json = dict[str, Any]


class ChildError(RuntimeError):
    """A child process died, did not answer in time, or refused a command; the message says which."""


class Child:
    """One child process on the parent's side: `start`, `call`, `kill9`, `stop`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        on_event: Callable[[Json], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.on_event = on_event
        self.ready: Json = {}
        self._process: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[Json | None] = queue.Queue()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ChildError(f"{self.name} is not running")
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = READY_TIMEOUT_S) -> Json:
        """Start the process and return its ready message."""
        self._replies = queue.Queue()
        with self.log_path.open("a") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own python and module
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                env=self.env,
            )
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        self.ready = self._next(timeout, "to start")
        if self.ready.get("kind") != "ready":
            raise ChildError(f"{self.name} said {self.ready!r} instead of ready")
        return self.ready

    def call(self, command: str, *, wait: float = CALL_TIMEOUT_S, **args: Any) -> Any:
        """Send a command and return its result (waiting up to `wait` seconds for it)."""
        self.send(command, **args)
        return self.result(command, wait)

    def send(self, command: str, **args: Any) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise ChildError(f"{self.name} is not running")
        try:
            process.stdin.write(json.dumps({"command": command, **args}) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise ChildError(f"{self.name} cannot take {command!r}: {exc}\n{self.log_tail()}") from None

    def result(self, command: str, timeout: float = CALL_TIMEOUT_S) -> Any:
        """The answer to the command sent last."""
        reply = self._next(timeout, f"to answer {command!r}")
        if not reply.get("ok"):
            raise ChildError(f"{self.name} refused {command!r}: {reply.get('error')}")
        return reply.get("result")

    def kill9(self) -> None:
        """SIGKILL: the process ends wherever it is, nothing of it runs any more."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            _close(process)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask it to quit cleanly; SIGKILL if it does not within `timeout`."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                self.send("quit")
                process.wait(timeout)
            except (ChildError, subprocess.TimeoutExpired):
                pass
        self.kill9()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _read(self, stdout: TextIO) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("kind") == "event":
                if self.on_event is not None:
                    self.on_event(message)
            else:
                self._replies.put(message)
        self._replies.put(None)

    def _next(self, timeout: float, what: str) -> Json:
        try:
            message = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"{self.name} did not {what} within {timeout:g} s\n{self.log_tail()}") from None
        if message is None:
            self._replies.put(None)  # stays dead for the next caller too
            raise ChildError(f"{self.name} exited instead of {what}\n{self.log_tail()}")
        return message


def _close(process: subprocess.Popen[str]) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                stream.close()


# --- the child's side ---------------------------------------------------------------------------------------

_out = threading.Lock()


def emit(message: Json) -> None:
    """One line on stdout (thread-safe): the agent's event reports come from its own thread."""
    line = json.dumps(message, separators=(",", ":"), default=str) + "\n"
    with _out:
        sys.stdout.write(line)
        sys.stdout.flush()


def serve(handlers: Mapping[str, Callable[..., Any]], ready: Json) -> None:
    """Say ready, then answer commands from stdin until "quit" or end of input."""
    emit({"kind": "ready", **ready})
    for line in sys.stdin:
        request = json.loads(line)
        command = request.pop("command")
        if command == "quit":
            emit({"kind": "reply", "ok": True, "result": None})
            return
        handler = handlers.get(command)
        if handler is None:
            emit({"kind": "reply", "ok": False, "error": f"unknown command {command!r}"})
            continue
        try:
            result = handler(**request)
        except Exception as exc:  # the parent decides what a failed command means
            emit({"kind": "reply", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            emit({"kind": "reply", "ok": True, "result": result})

"""``LlamaServer``: one real llama-server process on 127.0.0.1, health-checked and always stopped.

The process gets its own session (so a terminal's Ctrl+C reaches pytest, which stops it in
order) and, on Linux, a parent-death signal, so even a runner killed with SIGKILL does not
leave a server behind.  Output goes to a per-cell log file that the error messages quote.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pytest_llmbench.client import json_headers
from pytest_llmbench.errors import LlmbenchError

HOST = "127.0.0.1"
# llama-server reads its --api-key from here; the environment keeps the key out of the command
# line (``ps``) and out of the report, which records the command
API_KEY_ENV = "LLAMA_API_KEY"
_PR_SET_PDEATHSIG = 1


class ServerError(LlmbenchError):
    """llama-server could not be started or stopped answering; the message quotes its log."""


class ServerExited(ServerError):
    """The process exited before it became healthy."""


class ServerStartTimeout(ServerError):
    """The process was still not healthy when the startup timeout ran out."""


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (bound with SO_REUSEADDR off, then freed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _prepare_child(affinity: tuple[int, ...] | None) -> None:  # pragma: no cover - in the child
    """Between fork and exec: die with the runner, and run on this worker's cores only."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if affinity and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, affinity)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def exit_words(returncode: int) -> str:
    """``signal SIGKILL`` or ``code 1``: how a process ended, in two words."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    kept = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join(kept) if kept else "(empty log)"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: binary, model and the llama-server options as a list."""

    binary: Path
    model: Path
    args: tuple[str, ...] = ()
    threads: int | None = None
    cpu_affinity: tuple[int, ...] | None = None
    api_key: str | None = field(default=None, repr=False)

    def command(self, port: int) -> list[str]:
        cmd = [str(self.binary), "--model", str(self.model), "--host", HOST, "--port", str(port)]
        if self.threads:
            cmd += ["--threads", str(self.threads), "--threads-batch", str(self.threads)]
        return cmd + list(self.args)


class LlamaServer:
    """A started llama-server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    external = False  # this process owns the server (see remote.ExternalServer)

    def __init__(self, spec: ServerSpec, log_path: Path, startup_timeout: float = 60.0) -> None:
        self.spec = spec
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.load_seconds: float | None = None
        self.command: list[str] = []
        self.started_at: float | None = None  # time.monotonic() when the process was spawned
        self.stopped = False  # True once stop() was asked: an exit after that is expected

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def api_key(self) -> str | None:
        return self.spec.api_key

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Spawn the server and wait for ``/health``; on failure it is stopped and the log quoted.

        A free port can be taken by another process between our probe and the server's bind
        (parallel xdist workers); that one failure is retried on a new port.
        """
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return
            except ServerExited as exc:
                if attempt == attempts or "bind" not in str(exc).lower():
                    raise

    def _start_once(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.command = self.spec.command(self.port)
        affinity = self.spec.cpu_affinity
        started = time.monotonic()
        self.started_at, self.stopped = started, False
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _prepare_child(affinity),
                env=_child_env(self.spec.api_key),
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.load_seconds = time.monotonic() - started

    def _wait_healthy(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.startup_timeout
        delay = 0.02
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerExited(self._failure(f"{describe_exit(code)} during startup"))
            if self._health() == 200:
                return
            if time.monotonic() > deadline:
                raise ServerStartTimeout(
                    self._failure(f"not healthy after {self.startup_timeout:.0f} s")
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _failure(self, what: str) -> str:
        """One summary line (what happened, the log's last line), then the log's tail."""
        tail = log_tail(self.log_path)
        last = tail.splitlines()[-1] if tail else ""
        if last.startswith("$ "):  # only our own command line: the server printed nothing
            last = "(no output)"
        return f"llama-server {what}: {last} (log: {self.log_path})\n{tail}"

    def _health(self) -> int | None:
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            try:
                conn.request("GET", "/health")
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            return None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def unexpected_exit(self, wait: float = 0.0) -> int | None:
        """The return code of a server that exited on its own (None: running, or stopped by us);
        ``wait`` gives one whose connection just broke time to finish dying."""
        if self.process is None or self.stopped:
            return None
        try:
            return self.process.wait(timeout=wait) if wait else self.process.poll()
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the process group, a bounded wait, then SIGKILL; children are reaped too."""
        self.stopped = True
        proc = self.process
        if proc is None:
            return None
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(proc.pid).children(recursive=True)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
        _gone, alive = psutil.wait_procs(children, timeout=1)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        return proc.returncode

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (None once it has exited)."""
        if not self.is_running():
            return None
        try:
            return psutil.Process(self.pid).memory_info().rss
        except psutil.Error:
            return None

    def get_json(self, path: str, timeout: float = 10.0) -> Any:
        """GET a JSON endpoint of this server (``/props``, ``/v1/models``)."""
        return get_json(self.url, path, timeout, self.api_key)


def _child_env(api_key: str | None) -> dict[str, str]:
    """The server's environment: ours, with the run's key or none (a stray ``LLAMA_API_KEY``
    would lock out a client that was given no key)."""
    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    if api_key:
        env[API_KEY_ENV] = api_key
    return env


def get_json(url: str, path: str, timeout: float = 10.0, api_key: str | None = None) -> Any:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request("GET", path, headers=json_headers(api_key))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ServerError(f"GET {path} returned HTTP {resp.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def server_args(
    ctx_size: int, parallel: int, gpu_layers: int, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """The llama-server options every benchmark server gets, explicit so the report can show them."""
    args = [
        "--ctx-size",
        str(ctx_size),
        "--parallel",
        str(parallel),
        "--n-gpu-layers",
        str(gpu_layers),
    ]
    return (*args, *extra)

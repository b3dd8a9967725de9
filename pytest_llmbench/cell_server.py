"""One cell's llama-server life: effective options → start with retries → profile servers that
replace it → stop.

Kept apart from :class:`~pytest_llmbench.session.BenchSession`, which owns the run's state
(registry, early stop, result store) and decides what a start's outcome means for the cell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench import models, server_options, variants
from pytest_llmbench.config import Settings
from pytest_llmbench.matrix import Cell
from pytest_llmbench.server import LlamaServer, ServerError, ServerSpec


@dataclass(frozen=True)
class ServerSetup:
    """What every server this process starts shares: thresholds.yaml's llama_cpp settings, the
    process's CPU share, the API key and the log directory."""

    settings: Settings
    threads: int | None
    cpu_affinity: tuple[int, ...] | None
    log_dir: Path
    api_key: str | None = field(default=None, repr=False)

    def options(
        self, ctx_size: int | None = None, overrides: Mapping[str, Any] = ()
    ) -> dict[str, Any]:
        """Options for a cell's server: thresholds.yaml, this process's CPU share, then overrides."""
        base = variants.base_options(self.settings.llama_cpp, self.threads, ctx_size)
        return server_options.merge(base, dict(overrides))

    def spec(
        self,
        binary: Path,
        model: Path,
        ctx_size: int | None = None,
        extra_args: tuple[str, ...] = (),
        overrides: Mapping[str, Any] = (),
    ) -> ServerSpec:
        """The server command for a cell: settings, CPU share, overrides, then raw extra args."""
        options = self.options(ctx_size, overrides)
        args = variants.command_args(self.settings.llama_cpp, options, extra_args)
        return ServerSpec(
            binary=binary,
            model=model,
            args=args,
            cpu_affinity=self.cpu_affinity,
            api_key=self.api_key,
        )

    def server(self, spec: ServerSpec, log_name: str) -> LlamaServer:
        return LlamaServer(spec, self.log_dir / log_name, self.settings.health_timeout)


class CellServer:
    """The llama-server processes of one cell: its own (started with retries) and the profile
    servers that take its place, one running at a time so they never compete for the cores."""

    def __init__(
        self,
        cell: Cell,
        setup: ServerSetup,
        binary: Path,
        model: Path,
        overrides: Mapping[str, Any] = (),
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.cell = cell
        self.setup = setup
        self.binary = binary
        self.model = model
        self.overrides = dict(overrides)  # the variant's and the registry's load_config
        self.progress = progress
        self.spec = setup.spec(binary, model, overrides=self.overrides)
        self.log_path = setup.log_dir / f"{cell.id}.log"
        self.server: LlamaServer | None = None  # the cell's own server, once it started
        self.last_tried: LlamaServer | None = None  # the last server a start tried
        self.profile_servers: dict[str, LlamaServer] = {}
        self.attempts = 0  # starts tried so far
        self.max_attempts = 1
        self.failures: list[str] = []  # every failed start's error, in order

    def start(self, retries: int) -> bool:
        """Start the cell's server, trying ``retries`` more times after a failure unless it
        would fail the same way again (a damaged file, an unknown architecture)."""
        self.max_attempts = 1 + max(0, retries)
        for attempt in range(1, self.max_attempts + 1):
            self.attempts = attempt
            server = self.setup.server(self.spec, self.log_path.name)
            self.last_tried = server
            again = f" (attempt {attempt} of {self.max_attempts})" if attempt > 1 else ""
            self.progress(f"starting llama-server for {self.cell.id}{again}")
            try:
                server.start()
            except ServerError as exc:
                self.failures.append(str(exc))
                if models.deterministic_load_error(str(exc)):
                    return False
                continue
            self.server = server
            return True
        return False

    def profile_server(
        self,
        name: str,
        ctx_size: int | None = None,
        extra_args: tuple[str, ...] = (),
        options: Mapping[str, Any] = (),
    ) -> LlamaServer:
        """The ``name`` profile's server (started once, it lives until the cell is done); every
        other server of the cell is stopped first.  Raises ServerError if it cannot start."""
        existing = self.profile_servers.get(name)
        if existing is not None and existing.is_running():
            return existing
        for other in self.running():
            other.stop()
        overrides = dict(self.overrides)
        if ctx_size:  # the profile's context wins over the variant's
            overrides.pop("ctx_size", None)
        overrides.update(dict(options))
        spec = self.setup.spec(self.binary, self.model, ctx_size, extra_args, overrides)
        server = self.setup.server(spec, f"{self.cell.id}.{name}.log")
        self.progress(f"starting llama-server for {self.cell.id} ({name})")
        server.start()
        self.profile_servers[name] = server
        return server

    def running(self) -> list[LlamaServer]:
        """Every server of the cell that was started: its own first, then the profiles'."""
        own = [self.server] if self.server is not None else []
        return [*own, *self.profile_servers.values()]

    def exited(self, wait: float = 0.0) -> tuple[LlamaServer, int] | None:
        """The first server of the cell that exited on its own, and its exit code."""
        for server in self.running():
            code = server.unexpected_exit(wait)
            if code is not None:
                return server, code
        return None

    def stop(self) -> None:
        """Stop every server of the cell; a failure to stop one never keeps the others up."""
        for server in self.running():
            with contextlib.suppress(Exception):
                server.stop()

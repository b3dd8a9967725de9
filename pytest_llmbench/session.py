"""Per-run state: the selected cells, the result store and the one live server per cell.

The run's hooks drive it: a cell's server is started before its first test (so a load
failure is known before any fixture runs and can be reported once) and stopped right after
its last test, or at session end on every path out (pass, failure, Ctrl+C).  The processes
themselves are a :class:`~pytest_llmbench.cell_server.CellServer`'s; this module decides what
their outcome means for the cell (skip, load error, registry status, report facts).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pytest_llmbench import (
    judge,
    model_info,
    models,
    noise,
    server_options,
    termination,
    variants,
)
from pytest_llmbench.binaries import ToolNotFound, find_tool, tool_version
from pytest_llmbench.cell_server import CellServer, ServerSetup
from pytest_llmbench.config import Catalog, Settings
from pytest_llmbench.matrix import Cell
from pytest_llmbench.metric_table import metric
from pytest_llmbench.registry import Registry, RegistryError
from pytest_llmbench.remote import ExternalServer
from pytest_llmbench.results import ResultStore
from pytest_llmbench.server import LlamaServer, ServerError, exit_words, log_tail
from pytest_llmbench.shared_state import SharedState

MEMORY = metric("load.memory_gb")


@dataclass
class CellRun:
    """What happened when a cell's server was brought up."""

    cell: Cell
    server: LlamaServer | None = None
    model_path: Path | None = None
    gguf: models.GGUFInfo | None = None
    skip_reason: str | None = None
    load_error: str | None = None
    load_error_reported: bool = False
    servers: CellServer | None = None  # the cell's own processes (none for --llm-server-url)
    active: bool = True  # False once the cell's tests are done and its servers stopped
    options: variants.CellOptions | None = None  # the cell's variant and registry load_config
    load_attempts: int = 0
    died: str | None = None  # a server of the cell exited mid-run: what, when, the log's end
    bad_file: bool = False  # load_error is about the file (damaged, changed), not the cell

    @property
    def short_error(self) -> str:
        return (self.load_error or "").splitlines()[0] if self.load_error else ""


@dataclass
class BenchSession:
    settings: Settings
    catalog: Catalog | None
    cells: list[Cell]
    output_dir: Path
    model_dir: Path
    server_bin: str | None = None
    threads: int | None = None
    cpu_affinity: tuple[int, ...] | None = None
    workers: int = 1
    early_stop: bool = True
    external: dict[str, Any] | None = None  # identity of the --llm-server-url server
    state: SharedState | None = None
    registry: Registry | None = None  # compatibility registry; None: not consulted or updated
    retry_incompatible: bool = False
    load_retries: int = 1
    download: bool = False  # --llm-download: fetch missing hub files into the store
    api_key: str | None = field(default=None, repr=False)  # --llm-api-key, never in a report
    progress: Callable[[str], None] = lambda _msg: None
    cpu_warning: str | None = None  # -n beyond the usable cores: the split chosen
    store: ResultStore = field(default_factory=ResultStore)
    started_at: float = field(default_factory=time.time)
    machine_state: dict[str, Any] = field(default_factory=noise.machine_state)  # at the start
    runs: dict[str, CellRun] = field(default_factory=dict)
    _server_binary: Path | None = None

    def cell_by_id(self, cell_id: str | None) -> Cell | None:
        return next((c for c in self.cells if c.id == cell_id), None)

    def records(self) -> list[dict[str, Any]]:
        """The store's cell records in matrix order: under -n, workers finish (and their results
        arrive) in any order.  A record of a cell outside this run's matrix keeps its place last."""
        rank = {c.id: i for i, c in enumerate(self.cells)}
        return sorted(self.store.cells(), key=lambda r: rank.get(r.get("cell_id"), len(rank)))

    # -------------------------------------------------------------- binaries

    def server_binary(self) -> Path:
        if self._server_binary is None:
            self._server_binary = find_tool(
                "llama-server", self.server_bin or self.settings.llama_cpp.server_path
            )
        return self._server_binary

    def server_version(self) -> str:
        try:
            return tool_version(self.server_binary())
        except ToolNotFound as exc:
            return f"not found ({exc})"

    def quantize_binary(self) -> Path:
        return find_tool("llama-quantize", str(self.server_binary()))

    def perplexity_binary(self) -> Path:
        return find_tool("llama-perplexity", str(self.server_binary()))

    def finetune_binary(self) -> Path:
        return find_tool("llama-finetune", str(self.server_binary()))

    def reference(self, cell: Cell) -> tuple[str, Path, str]:
        """The divergence reference of ``cell``: its quant, file (derived if need be) and sha256."""
        store = self.model_store()
        quant = models.reference_quant(cell.model, cell.quant, store)
        if quant is None:
            raise models.ModelUnavailable(
                f"{cell.model.id}: no reference file on disk for the divergence profile; set "
                f"reference: QUANT in models.yaml or put a higher-precision file in {store.root}"
            )
        path = models.resolve(Cell(cell.model, quant), store, self.quantize_binary, self.progress)
        record = store.lookup(path) or {}
        return quant, path, str(record.get("sha256") or models.sha256_file(path))

    # -------------------------------------------------------------- cell lifecycle

    def model_store(self) -> models.ModelStore:
        return models.ModelStore(self.model_dir)

    def run_for(self, cell: Cell) -> CellRun:
        """The cell's run, bringing its server up on first use (never raises for a bad cell)."""
        run = self.runs.get(cell.id)
        if run is not None and run.active:
            return run
        for other in list(self.runs.values()):
            if other.cell.id != cell.id:
                self.stop(other.cell)
        run = CellRun(cell)
        self.runs[cell.id] = run
        if self.external is not None:
            self._attach_external(run)
            return run
        run.skip_reason = self.termination_reason(cell)
        try:
            if run.skip_reason is None:
                run.skip_reason = self.registry_skip(cell)
            if run.skip_reason is None:
                self._bring_up(run)
            self._record_compat(run)
        except RegistryError as exc:
            run.load_error = f"{exc} (to run without the registry: --llm-no-registry)"
        return run

    # -------------------------------------------------------------- compatibility registry

    def registry_skip(self, cell: Cell) -> str | None:
        """A cell the registry knows as incompatible is skipped with its notes, unless retried."""
        if self.registry is None or self.retry_incompatible:
            return None
        record = self.registry.get(cell.id)
        if record is None or record.status != "incompatible":
            return None
        return (
            f"registry: incompatible: {record.one_line_notes() or '(no notes)'} (to try again: "
            f"--llm-retry-incompatible or llmbench compat reset {cell.id})"
        )

    def _learn(self, cell: Cell, status: str, note: str = "") -> None:
        if self.registry is not None:
            self.registry.record_outcome(cell, status, note)

    def _record_compat(self, run: CellRun) -> None:
        """The cell's compatibility status, notes and effective server settings, for the report."""
        info: dict[str, Any] = {"variant": run.cell.variant, "load_attempts": run.load_attempts}
        if self.registry is not None:
            record = self.registry.record_for(run.cell)
            info.update(
                status=record.status,
                status_source=record.status_source,
                notes=record.notes,
                load_config=record.load_config,
                last_tested_at=record.last_tested_at,
                registry=str(self.registry.path),
            )
        if run.options is not None:
            defaults = variants.base_options(self.settings.llama_cpp, self.threads)
            info["settings"] = [s.as_dict() for s in variants.effective(defaults, run.options)]
            info["options"] = self.server_setup().options(None, run.options.overrides)
        self.store.set_info(run.cell, "compat", info)

    def _record_metrics(self, cell: Cell) -> None:
        """The registry keeps each cell's latest headline numbers beside its status."""
        if self.registry is None:
            return
        profiles = self.store.cell(cell).profiles
        interactive = profiles["interactive"].metrics if "interactive" in profiles else {}
        quality = profiles["quality"].metrics if "quality" in profiles else {}
        scores = {**(quality.get("scores") or {}), "overall": quality.get("overall")}
        try:
            self.registry.record_metrics(
                cell,
                max_throughput_tps=_number(interactive.get("tokens_per_second")),
                ttft_seconds=_number(interactive.get("ttft_seconds")),
                quality_scores={k: v for k, v in scores.items() if _number(v) is not None},
                quantization=cell.quant,
            )
        except RegistryError as exc:
            self.progress(f"warning: metrics for {cell.id} not saved in the registry: {exc}")

    def server_death(self, cell: Cell, activity: str, wait: float = 0.0) -> str | None:
        """Why the cell's tests cannot go on: one of its servers exited on its own.

        Found the first time (the test doing ``activity`` then fails with it), the message is
        kept so the cell's later tests skip naming it, and the registry marks the cell degraded.
        ``wait``: after a broken connection, how long a dying server may take to be reaped.
        """
        run = self.runs.get(cell.id)
        if run is None or not run.active or self.external is not None:
            return None
        if run.died is None:
            exited = run.servers.exited(wait) if run.servers is not None else None
            if exited is None:
                return None
            run.died = death_message(*exited, activity)
            summary = run.died.splitlines()[0]
            try:
                self._learn(cell, "degraded", summary)
                self._record_compat(run)
            except RegistryError as exc:
                self.progress(f"warning: {cell.id} not marked degraded in the registry: {exc}")
            self.store.set_info(cell, "server", {"exited": summary})
        return run.died

    # -------------------------------------------------------------- early termination

    def observations(self) -> list[termination.Observation]:
        return self.state.observations() if self.state else []

    def termination_reason(self, cell: Cell) -> str | None:
        if not self.early_stop:
            return None
        return termination.skip_reason(self.cell_facts(cell), self.observations(), self._memory())

    def memory_reason(self, cell: Cell) -> str | None:
        """Rule 1 again once the cell's file exists (downloaded or derived just now): its real
        size and GGUF shape may say more than the catalog did."""
        if not self.early_stop:
            return None
        return termination.preflight(self.cell_facts(cell), self._memory())

    def training_memory_reason(self, cell: Cell, factor: float) -> str | None:
        """Rule 1 for the finetune profile: F32 training of the cell's model must fit."""
        if not self.early_stop:
            return None
        return termination.training_preflight(self.cell_facts(cell), self._memory(), factor)

    def _memory(self) -> termination.Memory:
        limit = MEMORY.threshold(self.settings)  # the metric table's memory limit, if any
        return termination.Memory(
            available_bytes=psutil.virtual_memory().available,
            limit_bytes=int(limit * termination.GB) if limit else None,
        )

    def cell_facts(self, cell: Cell) -> termination.CellFacts:
        """Size and shape of a cell's model from what is known before loading: the file on disk,
        the catalog's size, or (with --llm-download) the hub's; nothing is fetched."""
        model, store = cell.model, self.model_store()
        path, file_bytes = models.known_file(cell, store)
        if file_bytes is None and cell.quant in model.file_sizes_gb:
            file_bytes = int(model.file_sizes_gb[cell.quant] * termination.GB)
        if file_bytes is None and self.download and model.repo is not None:
            file_bytes = self._hub_size(cell)
        reference = path
        if reference is None and model.derive is not None:
            base = models.base_cell(cell)
            reference, base_bytes = models.known_file(base, store)
            if file_bytes is None and base_bytes is not None:  # derived later: scale by bits/weight
                ratio = termination.BITS_PER_WEIGHT.get(
                    cell.quant, 8.0
                ) / termination.BITS_PER_WEIGHT.get(base.quant, 8.0)
                file_bytes = int(base_bytes * ratio)
        info = None
        if reference is not None:
            try:
                info = models.gguf_info_cached(store, reference)
            except Exception:  # unreadable metadata: the KV estimate is left out
                info = None
        head_dim = (
            info.embedding_length // info.head_count
            if info and info.embedding_length and info.head_count
            else None
        )
        try:
            overrides = variants.cell_options(cell, self.registry).overrides
        except (server_options.OptionError, RegistryError):  # reported when the server starts
            overrides = {}
        return termination.CellFacts(
            cell_id=cell.id,
            model_id=model.id,
            size_class=model.size,
            params_b=model.params_b,
            quant=cell.quant,
            file_bytes=file_bytes,
            n_layers=info.block_count if info else None,
            n_kv_heads=info.head_count_kv if info else None,
            head_dim=head_dim,
            ctx_size=int(overrides.get("ctx_size") or self.settings.llama_cpp.default_ctx_size),
            kv_bytes_per_value=termination.kv_bytes_per_value(
                overrides.get("cache_type_k"), overrides.get("cache_type_v")
            ),
        )

    def _hub_size(self, cell: Cell) -> int | None:
        """The hub's size of a cell's file (a HEAD request), for a run that may download it."""
        from pytest_llmbench import hub  # huggingface_hub is needed only when downloading

        model = cell.model
        try:
            return hub.remote_file(model.repo, model.files[cell.quant], model.revision).size
        except hub.HubError:
            return None  # the download itself will say what is wrong

    def observe(self, cell: Cell) -> termination.Observation:
        """What the finished cell teaches the rules, from its load outcome and its metrics."""
        run = self.runs.get(cell.id)
        record = self.store.cell(cell)
        rss_mb = record.server.get("rss_after_load_mb")
        load_error = run.load_error if run else None
        perf = termination.performance_failure(
            judge.threshold_checks(record.to_json(), self.settings)
        )
        return termination.Observation(
            cell_id=cell.id,
            model_id=cell.model.id,
            size_class=cell.model.size,
            params_b=cell.model.params_b,
            quant=cell.quant,
            file_bytes=record.file.get("size_bytes"),
            rss_bytes=int(rss_mb * 2**20) if rss_mb else None,
            load_failed=bool(load_error),
            out_of_memory=bool(load_error) and termination.is_out_of_memory(load_error),
            perf_failed=bool(perf),
            perf_reason=perf,
        )

    def finish(self, cell: Cell) -> None:
        """The cell's last test is done: stop its servers, share what it taught and its results."""
        self.stop(cell)
        run = self.runs.get(cell.id)
        if run is not None and run.server is not None and self.external is None:
            self._record_metrics(cell)
            self.mark_tested(run)
        if self.state is None:
            return
        if run is not None and not run.skip_reason and not run.bad_file:
            self.state.add_observation(self.observe(cell))
            self.state.save_cell(cell.id, self.store.to_json().get(cell.id, {}))
        self.state.mark_finished(cell.id)

    def fetch_model(self, cell: Cell) -> Path:
        """``--llm-download``: the cell's hub file, fetched now (resumed, sha256-verified).

        ``hub.fetch`` holds a lock per file, so xdist workers never fetch one file twice at
        once.  Any failure becomes :class:`models.ModelUnavailable`, which skips the cell with
        what failed and how to retry.
        """
        from pytest_llmbench import hub  # huggingface_hub is needed only when downloading

        store = self.model_store()
        retry = models.download_command(cell.model, cell.quant, store)
        try:
            return hub.fetch(cell, store, self.progress, show_bar=False)
        except (models.ModelUnavailable, models.ModelCorrupt, OSError) as exc:
            raise models.ModelUnavailable(
                f"{cell.id}: download failed: {exc} (retry: `{retry}` or --llm-download)"
            ) from exc

    def mark_tested(self, run: CellRun) -> None:
        """Note in the store's metadata.json when the cell's file was last benchmarked."""
        if run.model_path is None or self.external is not None:
            return
        try:
            self.model_store().mark_tested(run.model_path)
        except (models.ModelCorrupt, OSError) as exc:
            self.progress(f"warning: last_tested_at for {run.model_path} not recorded: {exc}")

    def _attach_external(self, run: CellRun) -> None:
        assert self.external is not None
        server = ExternalServer(self.external["url"], self.api_key)
        try:
            server.start()
        except (ServerError, OSError, ValueError) as exc:
            run.load_error = f"external llama-server at {server.url} is not healthy: {exc}"
            return
        run.server = server  # type: ignore[assignment]
        self.store.set_info(
            run.cell, "server", {"external": True, **self.external, "load_seconds": None}
        )
        self.store.set_info(
            run.cell,
            "file",
            {"path": self.external["model_path"], "size_bytes": self.external["size_bytes"]},
        )

    def _bring_up(self, run: CellRun) -> None:
        """A cell's server life up to running: its file, its options, its server started."""
        if self._resolve_file(run) and self._effective_options(run):
            self._start_server(run)

    def _resolve_file(self, run: CellRun) -> bool:
        """The cell's model file, found (or derived, or downloaded) and described in the
        record; False when the cell cannot run (``run`` then says why)."""
        cell, store = run.cell, self.model_store()
        try:
            fetch = self.fetch_model if self.download else None
            run.model_path = models.resolve(cell, store, self.quantize_binary, self.progress, fetch)
        except models.ModelUnavailable as exc:
            run.skip_reason = str(exc)
            return False
        except models.ModelCorrupt as exc:  # the user's file: a failure, not an absent file
            run.load_error, run.bad_file = str(exc), True
            return False
        except ToolNotFound as exc:
            run.load_error = str(exc)
            return False
        run.skip_reason = self.memory_reason(cell)
        if run.skip_reason:
            return False
        size = run.model_path.stat().st_size
        record = store.lookup(run.model_path) or {}
        self.store.set_info(
            cell,
            "file",
            {
                "path": str(run.model_path),
                "size_bytes": size,
                "size_gb": round(size / 1e9, 3),
                "sha256": record.get("sha256"),
                "source": record.get("source", "model_dir"),
                "derived_from": record.get("derived_from"),
            },
        )
        try:
            run.gguf = models.gguf_info_cached(store, run.model_path)
            self.store.set_info(cell, "gguf", asdict(run.gguf))
        except models.ModelUnloadable as exc:
            run.load_error = str(models.unloadable(run.model_path, str(exc), store))
            run.bad_file = True
            return False
        except Exception as exc:  # a file llama.cpp may still load; the load test will tell
            self.store.set_info(cell, "gguf", {"error": f"{type(exc).__name__}: {exc}"})
        try:
            entry = model_info.report_entry(store, run.model_path, self.settings)
            self.store.set_info(cell, "model_info", entry)
        except Exception as exc:  # metadata is for the reader; the benchmark goes on
            self.progress(f"warning: model metadata for {cell.id} not read: {exc}")
        return True

    def _effective_options(self, run: CellRun) -> bool:
        """The cell's server options: its variant's over the registry's custom load config."""
        try:
            run.options = variants.cell_options(run.cell, self.registry)
        except server_options.OptionError as exc:
            run.load_error = (
                f"invalid server options for {run.cell.id} in the registry: {exc} "
                f"(fix: llmbench compat set {run.cell.id} --load-config '{{...}}')"
            )
            return False
        return True

    def _start_server(self, run: CellRun) -> None:
        """Start the cell's server with retries; the registry and the record learn the outcome."""
        cell, store = run.cell, self.model_store()
        assert run.model_path is not None and run.options is not None
        try:
            binary = self.server_binary()
        except ToolNotFound as exc:
            run.load_error = str(exc)
            return
        servers = CellServer(
            cell, self.server_setup(), binary, run.model_path, run.options.overrides, self.progress
        )
        run.servers = servers
        if self.registry is not None:
            self.registry.mark_testing(cell)
        loaded = servers.start(self.load_retries)
        run.load_attempts = servers.attempts
        if not loaded:
            self._load_failed(run, servers)
            return
        if servers.failures:
            note = f"loaded on attempt {servers.attempts} of {servers.max_attempts} after: "
            self._learn(cell, "degraded", note + error_excerpt(servers.failures[0]))
        else:
            self._learn(cell, "compatible")
        run.server = server = servers.server
        if store.lookup(run.model_path) is None:  # it loaded: now it is worth a checksum
            models.record_local(store, run.model_path, cell.model, cell.quant)
            entry = store.lookup(run.model_path) or {}
            self.store.set_info(cell, "file", {k: entry.get(k) for k in ("sha256", "source")})
        rss = server.rss_bytes()
        self.store.set_info(
            cell,
            "server",
            {
                "command": server.command,
                "args": list(servers.spec.args),
                "load_attempts": run.load_attempts,
                "threads": self.threads,
                "cpu_affinity": list(self.cpu_affinity) if self.cpu_affinity else None,
                "log": str(servers.log_path),
                "load_seconds": server.load_seconds,
                "rss_after_load_mb": round(rss / 2**20, 1) if rss else None,
            },
        )

    def _load_failed(self, run: CellRun, servers: CellServer) -> None:
        """Every start failed: a damaged file is the file's fault (the registry learns nothing),
        anything else marks the cell incompatible."""
        failures = servers.failures
        run.load_error = failures[-1]
        if models.damage_in(failures[-1]) is not None:
            summary, _, tail = failures[-1].partition("\n")
            advice = models.damaged_advice(servers.model, self.model_store())
            run.load_error, run.bad_file = f"{summary}; {advice}\n{tail}", True
        else:
            tries = f" ({len(failures)} attempts)" if len(failures) > 1 else ""
            self._learn(
                run.cell, "incompatible", f"load failed{tries}: {error_excerpt(failures[-1])}"
            )
        tried = servers.last_tried
        self.store.set_info(
            run.cell,
            "server",
            {
                "command": tried.command if tried else None,
                "args": list(servers.spec.args),
                "log": str(servers.log_path),
            },
        )

    def profile_server(
        self,
        cell: Cell,
        name: str,
        *,
        ctx_size: int | None = None,
        extra_args: tuple[str, ...] = (),
        options: Mapping[str, Any] = (),
    ) -> LlamaServer:
        """A second server for the cell with profile-specific options (bigger context, embeddings,
        more slots); ``options`` are server options (``{"parallel": 8}``) that win over the cell's.

        The cell's default server is stopped first so the two never compete for the cores; the
        profile server lives until the cell is done.  Raises ServerError if it cannot start.
        """
        run = self.run_for(cell)
        if self.external is not None:
            raise ServerError(
                f"the {name} profile starts a server of its own, which --llm-server-url rules out"
            )
        if run.servers is None or run.servers.server is None:
            raise ServerError(f"load failed: {run.short_error or run.skip_reason}")
        server = run.servers.profile_server(name, ctx_size, extra_args, options)
        self.store.set_info(
            cell,
            "server",
            {f"{name}_command": server.command, f"{name}_load_seconds": server.load_seconds},
        )
        return server

    def server_setup(self) -> ServerSetup:
        """What every server this process starts shares (settings, CPU share, key, log dir)."""
        return ServerSetup(
            settings=self.settings,
            threads=self.threads,
            cpu_affinity=self.cpu_affinity,
            log_dir=self.output_dir / "logs",
            api_key=self.api_key,
        )

    def stop(self, cell: Cell) -> None:
        run = self.runs.get(cell.id)
        if run is None:
            return
        run.active = False
        if run.servers is not None:
            run.servers.stop()

    def stop_all(self) -> None:
        for run in self.runs.values():
            self.stop(run.cell)

    # -------------------------------------------------------------- report metadata

    def config_snapshot(self) -> dict[str, Any]:
        return {
            "settings": _jsonable(asdict(self.settings)),
            "catalog": str(self.catalog.path) if self.catalog else None,
            "cells": [c.id for c in self.cells],
            "threads": None if self.external else self.threads,  # a remote server has its own
            "workers": self.workers,
            "early_stop": self.early_stop,
            "external_server": self.external,
            "model_dir": str(self.model_dir),
        }


# llama.cpp's log level " E ", or the words its errors use
_ERROR_LINE = re.compile(r"(?-i:\sE\s)|\berror\b|\bfailed\b|\babort|exception|terminate", re.I)


def error_excerpt(load_error: str, limit: int = 3) -> str:
    """A failed start's summary line plus the log's last error lines (the cause is often
    a few lines above the server's final 'exiting' line)."""
    summary, *tail = load_error.splitlines() or [""]
    errors: list[str] = []
    for line in tail:
        text = line.strip()[:200]
        if text.startswith("$ ") or text in summary or text in errors:
            continue  # our own command line, or already quoted
        if _ERROR_LINE.search(line):
            errors.append(text)
    return "; ".join([summary, *errors[-limit:]])


def death_message(server: LlamaServer, code: int, activity: str, lines: int = 8) -> str:
    """``llama-server exited (signal SIGKILL) after 12 s while …`` and the end of its log."""
    alive = time.monotonic() - server.started_at if server.started_at is not None else None
    after = f" after {alive:.0f} s" if alive is not None else ""
    return (
        f"llama-server exited ({exit_words(code)}){after} while {activity} "
        f"(log: {server.log_path})\n{log_tail(server.log_path, lines)}"
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value

"""Assemble a run's :class:`BenchSession` from pytest's options, ini keys and the YAML files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pytest_llmbench import config as cfg
from pytest_llmbench import parallel, remote
from pytest_llmbench.binaries import ToolNotFound, find_tool
from pytest_llmbench.errors import UsageError
from pytest_llmbench.matrix import select_cells
from pytest_llmbench.registry import Registry, registry_path
from pytest_llmbench.report.progress_lines import progress_writer
from pytest_llmbench.session import BenchSession
from pytest_llmbench.shared_state import SharedState, new_run_directory
from pytest_llmbench.system import usable_cores


def build_session(config: pytest.Config) -> BenchSession:
    """The run's state from the options, ini keys and the two YAML files."""
    rootdir = Path(config.rootpath)
    opt = config.getoption
    thresholds_path = cfg.find_config_file(
        opt("llm_thresholds"), config.getini("llmbench_thresholds"), rootdir, "thresholds.yaml"
    )
    settings = cfg.load_settings(thresholds_path)
    if thresholds_path is None:
        settings = cfg.Settings(base_dir=rootdir)
    models_path = cfg.find_config_file(
        opt("llm_models"), config.getini("llmbench_models"), rootdir, "models.yaml"
    )
    catalog = cfg.load_catalog(models_path) if models_path else None
    model_ids = list(opt("llm_model")) or [
        m for m in os.environ.get("LLMBENCH_MODEL", "").split(",") if m.strip()
    ]
    api_key = opt("llm_api_key") or os.environ.get("LLMBENCH_API_KEY") or None
    url = opt("llm_server_url")
    external = remote.identify(url, api_key) if url else None
    if external is not None:
        cells = [remote.external_cell(external, catalog)]
    elif catalog is not None:
        mode = opt("llm_mode") or settings.test_mode
        cells = select_cells(catalog, mode, model_ids, opt("llm_quant"), ci_only=opt("llm_ci"))
    else:
        cells = []
    if external is None:
        _check_named_server(opt("llm_server_bin"), settings, thresholds_path)
    output = opt("llm_output") or config.getini("llmbench_output") or settings.output.dir
    model_dir = opt("llm_model_dir") or config.getini("llmbench_model_dir") or settings.model_dir
    workerinput = getattr(config, "workerinput", None)
    index, workers = (
        parallel.worker_identity(workerinput) if workerinput else (0, _planned_workers(config))
    )
    threads = opt("llm_threads") or settings.llama_cpp.default_threads
    cores = usable_cores()
    share = parallel.cpu_share(cores, workers, index, threads)
    state_dir = Path(workerinput["llmbench_state"]) if workerinput else new_run_directory()
    registry = None
    if external is None and not opt("llm_no_registry"):
        registry = Registry(registry_path(opt("llm_registry"), settings, rootdir))

    log = run_logger(settings, workerinput)

    return BenchSession(
        settings=settings,
        catalog=catalog,
        cells=cells,
        output_dir=_resolve(output, settings, Path.cwd() if opt("llm_output") else None),
        model_dir=_resolve(model_dir, settings, Path.cwd() if opt("llm_model_dir") else None),
        server_bin=opt("llm_server_bin"),
        threads=share.threads,
        cpu_affinity=share.affinity,
        workers=share.workers,
        early_stop=not opt("llm_no_early_stop"),
        external=external,
        state=SharedState(state_dir),
        registry=registry,
        retry_incompatible=opt("llm_retry_incompatible"),
        load_retries=settings.llama_cpp.load_retries,
        download=bool(opt("llm_download")),
        api_key=api_key,
        progress=progress_writer(config, log),
        cpu_warning=None if workerinput else parallel.oversubscription(cores, workers, threads),
    )


LOGGER = "pytest_llmbench"


def run_logger(settings: cfg.Settings, workerinput: dict | None) -> logging.Logger:
    """The plugin's logger at ``logging.level``; with ``logging.file``, also appended to that
    file (relative to thresholds.yaml), each line naming the xdist worker it came from."""
    log = logging.getLogger(LOGGER)
    log.setLevel(settings.logging.level.upper())
    for handler in [h for h in log.handlers if getattr(h, "llmbench", False)]:
        log.removeHandler(handler)  # a previous run in this process (pytester)
        handler.close()
    if settings.logging.file:
        path = settings.resolve_path(settings.logging.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        worker = (workerinput or {}).get("workerid", "main")
        handler.setFormatter(logging.Formatter(f"%(asctime)s {worker} %(levelname)s %(message)s"))
        handler.llmbench = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    return log


def close_run_logger() -> None:
    log = logging.getLogger(LOGGER)
    for handler in [h for h in log.handlers if getattr(h, "llmbench", False)]:
        log.removeHandler(handler)
        handler.close()


def _check_named_server(option: str | None, settings: cfg.Settings, path: Path | None) -> None:
    """A llama-server named by option, env or thresholds.yaml must exist: a usage error now,
    not a load failure per cell later."""
    configured = settings.llama_cpp.server_path
    if not (option or configured or os.environ.get("LLMBENCH_SERVER_BIN")):
        return
    try:
        find_tool("llama-server", option or configured)
    except ToolNotFound as exc:
        message = str(exc)
        if configured and not option:
            message = message.replace("--llm-server-bin", f"{path}: llama_cpp.server_path =", 1)
        raise UsageError(message) from None


def _resolve(value: str, settings: cfg.Settings, base: Path | None) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (base / path) if base else settings.resolve_path(value)


def _planned_workers(config: pytest.Config) -> int:
    """How many xdist workers the controller will start (1 without -n)."""
    numprocesses = getattr(config.option, "numprocesses", None)
    if isinstance(numprocesses, int):
        return max(1, numprocesses)
    return usable_cores() if numprocesses else 1

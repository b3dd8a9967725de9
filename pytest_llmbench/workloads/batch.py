"""Batch document processing: summarise documents back to back, as an overnight job would.

Procedure: documents of 200–500 tokens are assembled from the bundled prose (a different
combination of paragraphs per document) and counted with the server's tokenizer.  One
unmeasured warm-up document, then each document is summarised through the chat endpoint (the
server applies the model's template) with the prompt cache off and a fixed summary length
(``ignore_eos``), so the time per document reflects the machine rather than how long the model
chose to talk.  The server's RSS is read after every document: a rising trend is a leak.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.client import LlamaClient, RequestFailed
from pytest_llmbench.monitor import ResourceMonitor, process_rss_mb

SUMMARY_TOKENS = 64
MIN_TOKENS, MAX_TOKENS = 200, 500
DEGRADATION_WINDOW = 10
INSTRUCTION = "Summarise the following document in two or three sentences.\n\n"


@dataclass(frozen=True)
class Document:
    index: int
    text: str
    tokens: int


def build_documents(
    paragraphs: Sequence[str], count: int, count_tokens: Callable[[str], int]
) -> list[Document]:
    """``count`` distinct documents of MIN_TOKENS–MAX_TOKENS tokens where the prose allows.

    Document ``i`` starts at paragraph ``i mod n`` and steps ``1 + i div n`` paragraphs at a
    time, so the first ``n·(n-1)`` documents are all different combinations.
    """
    n = len(paragraphs)
    if n == 0:
        raise ValueError("no paragraphs to build documents from")
    documents = []
    for i in range(count):
        step = 1 + (i // n) % max(1, n - 1)
        index, parts, text, tokens = i % n, [], "", 0
        while tokens < MIN_TOKENS and len(parts) < n:
            candidate = "\n\n".join([*parts, paragraphs[index]])
            counted = count_tokens(candidate)
            if counted > MAX_TOKENS and parts:
                break
            parts.append(paragraphs[index])
            text, tokens = candidate, counted
            index = (index + step) % n
        documents.append(Document(i, text, tokens))
    return documents


def messages(document: Document) -> list[dict[str, str]]:
    return [{"role": "user", "content": INSTRUCTION + document.text}]


# ------------------------------------------------------------------ statistics


def degradation_percent(times: Sequence[float], window: int = DEGRADATION_WINDOW) -> float | None:
    """How much slower the last ``window`` documents were than the first ``window`` (percent).

    Shorter runs compare halves; fewer than two documents have no trend (None).
    """
    k = min(window, len(times) // 2)
    if k < 1:
        return None
    first, last = statistics.fmean(times[:k]), statistics.fmean(times[-k:])
    return 100.0 * (last - first) / first if first > 0 else None


def slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` over their index (None for fewer than two)."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, statistics.fmean(values)
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


@dataclass(frozen=True)
class DocumentResult:
    index: int
    prompt_tokens: int
    output_tokens: int
    seconds: float
    rss_mb: float | None


@dataclass(frozen=True)
class BatchMeasurement:
    documents: tuple[DocumentResult, ...]
    planned: int
    error: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> list[float]:
        return [d.seconds for d in self.documents]

    @property
    def complete(self) -> bool:
        return self.error is None and len(self.documents) == self.planned

    @property
    def mean_seconds(self) -> float | None:
        return statistics.fmean(self.times) if self.times else None

    @property
    def cv_percent(self) -> float | None:
        return m.coefficient_of_variation(self.times)

    @property
    def docs_per_hour(self) -> float | None:
        mean = self.mean_seconds
        return 3600.0 / mean if mean else None

    @property
    def degradation_percent(self) -> float | None:
        return degradation_percent(self.times)

    @property
    def rss_slope_mb_per_doc(self) -> float | None:
        return slope([d.rss_mb for d in self.documents if d.rss_mb is not None])

    @property
    def memory_growth_mb(self) -> float | None:
        """The RSS trend over the whole run (fitted slope × documents), robust to one-off noise."""
        per_doc = self.rss_slope_mb_per_doc
        rss = [d.rss_mb for d in self.documents if d.rss_mb is not None]
        return per_doc * (len(rss) - 1) if per_doc is not None else None

    def throughput(self) -> dict[str, Any]:
        """Documents per hour with the t interval of the mean time per document, inverted
        (documents differ, so the mean time is what a batch of them takes)."""
        mean = stats.mean_interval(self.times)
        return {
            **mean.as_dict(),
            "value": 3600.0 / mean.value,
            "low": 3600.0 / mean.high,
            "high": 3600.0 / mean.low if mean.low > 0 else None,
            "half_width_percent": None,
            "method": "t interval of the mean time per document",
            "unit": "docs/hour",
            "samples": [3600.0 / t for t in self.times],
        }

    def metrics(self) -> dict[str, Any]:
        times = self.times
        summary = m.summarize(times) if times else None
        return {
            "documents": len(self.documents),
            "planned_documents": self.planned,
            "summary_tokens": SUMMARY_TOKENS,
            "mean_seconds": self.mean_seconds,
            "median_seconds": summary.median if summary else None,
            "stdev_seconds": summary.stdev if summary else None,
            "cv_percent": self.cv_percent,
            "docs_per_hour": self.docs_per_hour,
            "degradation_percent": self.degradation_percent,
            "rss_slope_mb_per_doc": self.rss_slope_mb_per_doc,
            "memory_growth_mb": self.memory_growth_mb,
            "seconds_per_document": [round(t, 4) for t in times],
            "measurements": {"docs_per_hour": self.throughput()} if len(times) >= 2 else {},
            "prompt_tokens": [d.prompt_tokens for d in self.documents],
            "output_tokens": [d.output_tokens for d in self.documents],
            "rss_mb": [d.rss_mb for d in self.documents],
            "peak_rss_mb": self.resources.get("peak_rss_mb"),
            "error": self.error,
            "resources": self.resources,
        }


def measure(
    client: LlamaClient, pid: int | None, documents: Sequence[Document]
) -> BatchMeasurement:
    """Summarise every document in order; a failed request ends the run and is recorded."""
    if not documents:
        return BatchMeasurement((), 0, error="no documents to process")
    results: list[DocumentResult] = []
    error = None
    with ResourceMonitor(pid, interval=1.0) as monitor:
        try:
            client.chat(messages(documents[-1]), 8)  # warm-up: lazy allocation, not measured
            for doc in documents:
                r = client.chat(messages(doc), SUMMARY_TOKENS, ignore_eos=True, cache_prompt=False)
                results.append(
                    DocumentResult(
                        doc.index, r.prompt_tokens, r.output_tokens, r.e2e_s, process_rss_mb(pid)
                    )
                )
        except RequestFailed as exc:
            error = f"stopped after {len(results)} of {len(documents)} documents: {exc}"
    return BatchMeasurement(tuple(results), len(documents), error, monitor.summary())

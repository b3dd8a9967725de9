"""Embeddings: a server in embedding mode (mean pooling), checked for shape and sense, timed.

Checks on a fixed set of code and text snippets (``bench/data/embedding_snippets.json``): every
vector has the model's embedding length (GGUF ``embedding_length``), unit L2 norm (the server
normalises), values in [-1, 1], pairwise cosine similarities in [-1, 1], and for every triplet in
the data the related pair scores above the unrelated one.  Latency per embedding, one text per
request and ``BATCH_SIZE`` per request, median over ``repetitions`` after one warm-up.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.client import LlamaClient, RequestFailed
from pytest_llmbench.monitor import ResourceMonitor

SERVER_ARGS = ("--embeddings", "--pooling", "mean")
BATCH_SIZE = 5
NORM_TOLERANCE = 1e-3
SNIPPETS_FILE = "embedding_snippets.json"


@dataclass(frozen=True)
class Triplet:
    anchor: str
    related: str
    unrelated: str


@dataclass(frozen=True)
class SnippetSet:
    snippets: dict[str, str]
    triplets: tuple[Triplet, ...]


def load_snippets(path: Path) -> SnippetSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    snippets = {str(k): str(v) for k, v in data["snippets"].items()}
    triplets = tuple(Triplet(t["anchor"], t["related"], t["unrelated"]) for t in data["triplets"])
    for t in triplets:
        for name in (t.anchor, t.related, t.unrelated):
            if name not in snippets:
                raise ValueError(f"{path}: triplet names unknown snippet {name!r}")
    return SnippetSet(snippets, triplets)


def embed(client: LlamaClient, texts: Sequence[str]) -> list[list[float]]:
    """Vectors from the OpenAI-compatible endpoint, in input order."""
    body = client.post_json("/v1/embeddings", {"input": list(texts)})
    data = sorted(body["data"], key=lambda d: d["index"])
    if len(data) != len(texts):
        raise RequestFailed(f"asked for {len(texts)} embeddings, got {len(data)}")
    return [list(map(float, d["embedding"])) for d in data]


def l2_norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = l2_norm(a) * l2_norm(b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


# ------------------------------------------------------------------ checks (pure)


NO_VECTORS = ["no vectors were returned"]


def dimension_problems(vectors: Mapping[str, Sequence[float]], expected: int | None) -> list[str]:
    if not vectors:
        return NO_VECTORS
    if expected is None:
        return ["the model's embedding length is unknown (GGUF embedding_length missing)"]
    return [f"{k}: {len(v)} dimensions" for k, v in vectors.items() if len(v) != expected]


def norm_problems(vectors: Mapping[str, Sequence[float]]) -> list[str]:
    if not vectors:
        return NO_VECTORS
    return [
        f"{k}: norm {n:.4f}"
        for k, v in vectors.items()
        if abs((n := l2_norm(v)) - 1.0) > NORM_TOLERANCE
    ]


def range_problems(vectors: Mapping[str, Sequence[float]]) -> list[str]:
    if not vectors:
        return NO_VECTORS
    return [
        f"{k}: values from {min(v):.3f} to {max(v):.3f}"
        for k, v in vectors.items()
        if v and (min(v) < -1.0 or max(v) > 1.0)
    ]


def similarities(vectors: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {
        f"{a}~{b}": cosine(vectors[a], vectors[b]) for a, b in itertools.combinations(vectors, 2)
    }


def similarity_problems(vectors: Mapping[str, Sequence[float]]) -> list[str]:
    """Cosine similarities outside [-1, 1] (rounding slack 1e-6): a broken vector."""
    if not vectors:
        return NO_VECTORS
    sims = similarities(vectors).items()
    return [f"{pair}: {s:.4f}" for pair, s in sims if not -1.0 - 1e-6 <= s <= 1.0 + 1e-6]


def misordered_triplets(
    vectors: Mapping[str, Sequence[float]], triplets: Sequence[Triplet]
) -> list[str]:
    """Triplets whose related pair does not score above the unrelated pair."""
    if not vectors:
        return NO_VECTORS
    out = []
    for t in triplets:
        related = cosine(vectors[t.anchor], vectors[t.related])
        unrelated = cosine(vectors[t.anchor], vectors[t.unrelated])
        if related <= unrelated:
            out.append(
                f"{t.anchor}~{t.related} {related:.3f} ≤ {t.anchor}~{t.unrelated} {unrelated:.3f}"
            )
    return out


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class EmbeddingMeasurement:
    vectors: dict[str, list[float]]
    expected_dimension: int | None
    triplets: tuple[Triplet, ...]
    single_ms: tuple[float, ...] = ()  # per request of one text
    batch_ms: tuple[float, ...] = ()  # per embedding, requests of BATCH_SIZE texts
    error: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def latency(self) -> stats.Estimate | None:
        """Median latency per one-text request with its interval."""
        return stats.median_interval(self.single_ms) if self.single_ms else None

    @property
    def batch_latency(self) -> stats.Estimate | None:
        return stats.median_interval(self.batch_ms) if self.batch_ms else None

    @property
    def latency_ms(self) -> float | None:
        return statistics.median(self.single_ms) if self.single_ms else None

    @property
    def batch_latency_ms(self) -> float | None:
        return statistics.median(self.batch_ms) if self.batch_ms else None

    @property
    def dimensions(self) -> list[int]:
        return sorted({len(v) for v in self.vectors.values()})

    def metrics(self) -> dict[str, Any]:
        sims = similarities(self.vectors)
        return {
            "latency_ms": self.latency_ms,
            "batch_latency_ms": self.batch_latency_ms,
            "batch_size": BATCH_SIZE,
            "repetitions": len(self.single_ms),
            "single_ms": [round(v, 3) for v in self.single_ms],
            "batch_ms": [round(v, 3) for v in self.batch_ms],
            "measurements": {
                key: m.measurement(values, "ms")
                for key, values in (
                    ("latency_ms", self.single_ms),
                    ("batch_latency_ms", self.batch_ms),
                )
                if values
            },
            "dimension": self.dimensions[0] if len(self.dimensions) == 1 else self.dimensions,
            "expected_dimension": self.expected_dimension,
            "norms": {k: round(l2_norm(v), 6) for k, v in self.vectors.items()},
            "similarities": {k: round(v, 4) for k, v in sims.items()},
            "misordered_triplets": misordered_triplets(self.vectors, self.triplets),
            # wrong shape, norm or range: vectors a search index cannot use
            "vector_problems": dimension_problems(self.vectors, self.expected_dimension)
            + norm_problems(self.vectors)
            + range_problems(self.vectors),
            "error": self.error,
            "peak_rss_mb": self.resources.get("peak_rss_mb"),
            "resources": self.resources,
        }


def _timed_ms(client: LlamaClient, texts: Sequence[str]) -> float:
    start = time.perf_counter()
    embed(client, texts)
    return 1000.0 * (time.perf_counter() - start)


def measure(
    client: LlamaClient,
    pid: int | None,
    snippet_set: SnippetSet,
    expected_dimension: int | None,
    repetitions: int,
) -> EmbeddingMeasurement:
    """Embed every snippet once for the checks, then time single and batched requests; each
    timed request uses a different slice of the snippets so no two are identical."""
    names, texts = list(snippet_set.snippets), list(snippet_set.snippets.values())
    vectors: dict[str, list[float]] = {}
    single: list[float] = []
    batched: list[float] = []
    error = None
    with ResourceMonitor(pid, interval=0.5) as monitor:
        try:
            embed(client, ["warm-up"])  # lazy allocation is paid here, not measured
            vectors = dict(zip(names, embed(client, texts), strict=True))
            for i in range(repetitions):
                single.append(_timed_ms(client, [texts[i % len(texts)]]))
                window = [texts[(i + k) % len(texts)] for k in range(BATCH_SIZE)]
                batched.append(_timed_ms(client, window) / BATCH_SIZE)
        except (RequestFailed, KeyError, TypeError, ValueError) as exc:
            error = str(exc)
    return EmbeddingMeasurement(
        vectors,
        expected_dimension,
        snippet_set.triplets,
        tuple(single),
        tuple(batched),
        error,
        monitor.summary(),
    )

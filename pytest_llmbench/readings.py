"""The words for a number: each table maps ascending bounds to what a value below them means
for a user ("comfortable reading speed", "coffee-break territory").

Pure data.  Which metric reads with which table is said once, in :mod:`pytest_llmbench.metric_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

Readings = Sequence[tuple[float | None, str]]

# Each table: ascending upper bounds (exclusive) with the reading below that bound; the last
# entry (bound None) covers everything above.

TOKENS_PER_SECOND = (
    (2.0, "too slow to read along: under 2 t/s"),
    (5.0, "slow but readable, like careful dictation"),
    (10.0, "moderate pace, fine for a patient reader"),
    (15.0, "comfortable reading speed"),
    (20.0, "fast reading, feels responsive"),
    (40.0, "very fast, excellent for interactive use"),
    (None, "nearly instant for most prompts"),
)

TIME_TO_FIRST_TOKEN = (
    (2.0, "feels instant"),
    (5.0, "a barely noticeable pause"),
    (10.0, "noticeable but acceptable"),
    (30.0, "a significant wait that breaks the flow"),
    (None, "frustrating, unusable for interactive work"),
)

CONTEXT_LOAD = (
    (5.0, "smooth workflow"),
    (15.0, "a brief, manageable pause"),
    (30.0, "a noticeable delay"),
    (60.0, "coffee-break territory"),
    (None, "too slow for practical use"),
)

MEMORY_GB = (
    (6.0, "plenty of headroom"),
    (8.0, "room for other applications"),
    (12.0, "dedicated inference with some headroom"),
    (14.0, "most of a 16 GB machine"),
    (None, "swapping likely on a 16 GB machine"),
)

BATCH_DOCS_PER_HOUR = (
    (10.0, "only for small batches"),
    (30.0, "overnight batch jobs"),
    (60.0, "reasonable for moderate batches"),
    (120.0, "efficient bulk processing"),
    (None, "excellent throughput"),
)

TEMPERATURE_C = (
    (70.0, "cool, no concerns"),
    (80.0, "warm but safe"),
    (85.0, "hot, ensure good airflow"),
    (90.0, "thermal limit approaching"),
    (None, "too hot, reduce the load"),
)

STREAM_CONSISTENCY_CV = (
    (10.0, "steady stream, no visible stutter"),
    (20.0, "slightly uneven stream"),
    (50.0, "uneven stream, noticeable stutter"),
    (None, "erratic stream"),
)

PROMPT_TOKENS_PER_SECOND = (
    (50.0, "very slow reading: an 8k-token document takes minutes"),
    (200.0, "slow reading: an 8k-token document takes 40 s or more"),
    (1000.0, "brisk reading: an 8k-token document in 8–40 s"),
    (None, "fast reading: an 8k-token document in under 8 s"),
)

BATCH_CONSISTENCY_CV = (
    (10.0, "predictable: batch finish times are easy to plan"),
    (20.0, "some spread: plan batches with a margin"),
    (50.0, "erratic: batch finish times are hard to predict"),
    (None, "unstable: something else is competing for the machine"),
)

SLOWDOWN_PERCENT = (
    (5.0, "no slowdown over the run"),
    (20.0, "a slight slowdown over the run"),
    (50.0, "a clear slowdown: long jobs take longer than planned"),
    (None, "a severe slowdown: long jobs degrade badly"),
)

SWAP_GROWTH_MB = (
    (1.0, "no swapping"),
    (256.0, "light swapping: expect occasional stalls"),
    (None, "heavy swapping: the model does not fit in RAM"),
)

MEMORY_GROWTH_MB = (
    (16.0, "flat memory: no sign of a leak"),
    (256.0, "memory creeps up: watch long jobs"),
    (None, "memory keeps growing: a leak would exhaust RAM on long jobs"),
)

QUALITY_PERCENT = (
    (50.0, "unreliable: wrong more often than right"),
    (75.0, "unreliable for this kind of task: check every answer"),
    (90.0, "usable with spot checks"),
    (None, "reliable for this kind of task"),
)

KL_DIVERGENCE = (
    (0.01, "indistinguishable from the reference in practice"),
    (0.05, "a slight loss: rare differences in wording"),
    (0.15, "a noticeable loss: wording often differs, facts usually hold"),
    (0.5, "a clear loss: answers drift from the reference's"),
    (None, "a heavy loss: the model behaves like a different, weaker one"),
)

EMBEDDING_LATENCY_MS = (
    (10.0, "instant: fine for search-as-you-type"),
    (50.0, "fast enough for interactive search"),
    (200.0, "fine for indexing, a noticeable lag in interactive search"),
    (None, "slow: indexing a large codebase takes hours"),
)


def interpret(table: Readings, value: float) -> str:
    for bound, reading in table:
        if bound is None or value < bound:
            return reading
    return table[-1][1]


def reading_for(table: Readings, value: float | None) -> str:
    """``interpret`` for a value that may be missing (an assertion then says "not measured")."""
    return "" if value is None else interpret(table, value)

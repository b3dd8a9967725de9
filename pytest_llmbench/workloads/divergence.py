"""Quantization loss the way llama.cpp measures it: KL divergence from a reference's logits.

``llama-perplexity`` runs the reference file once over a fixed text and saves its logits
(``--kl-divergence-base``); each quant then runs over the same tokens and reports how far its
next-token distributions are from the reference's (mean KL divergence and its percentiles), how
often its most likely token is the same, and both perplexities.  Unlike a handful of quiz
questions these figures separate quantizations precisely even on a small model, with the ±
llama-perplexity gives for each.

The reference's logits are computed once per (reference sha256, text, ctx, tokens) and kept in
the model store (``.kld/``), shared by runs and xdist workers under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_llmbench.errors import LlmbenchError
from pytest_llmbench.models import atomic_write_text

TIMEOUT_S = 3600.0  # one llama-perplexity run; a 7B model over 8k tokens on a small CPU


class DivergenceError(LlmbenchError):
    """llama-perplexity failed or printed no statistics; the message ends with its last lines."""


@dataclass(frozen=True)
class Divergence:
    """One quant against the reference, as llama-perplexity reports it (± is its own)."""

    mean_kld: float
    mean_kld_pm: float
    kld_p99: float | None
    same_top_percent: float
    same_top_pm: float
    ppl: float
    ppl_pm: float
    ppl_base: float
    ppl_base_pm: float
    ppl_ratio: float
    ppl_ratio_pm: float
    chunks: int
    ctx: int
    seconds: float
    reference_quant: str = ""
    is_reference: bool = False
    note: str = ""

    @property
    def scored_tokens(self) -> int:
        """Tokens whose distributions were compared: the second half of each chunk."""
        return self.chunks * (self.ctx - 1 - self.ctx // 2)

    @property
    def ppl_increase_percent(self) -> float:
        return 100.0 * (self.ppl_ratio - 1.0)

    def metrics(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "scored_tokens": self.scored_tokens,
            "text_tokens": self.chunks * self.ctx,
            "ppl_increase_percent": self.ppl_increase_percent,
        }


# ------------------------------------------------------------------ reading llama-perplexity

_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_PATTERNS = {
    "ppl": rf"Mean PPL\(Q\)\s*:\s*{_NUMBER}\s*±\s*{_NUMBER}",
    "ppl_base": rf"Mean PPL\(base\)\s*:\s*{_NUMBER}\s*±\s*{_NUMBER}",
    "ppl_ratio": rf"Mean PPL\(Q\)/PPL\(base\)\s*:\s*{_NUMBER}\s*±\s*{_NUMBER}",
    "mean_kld": rf"Mean\s+KLD:\s*{_NUMBER}\s*±\s*{_NUMBER}",
    "same_top": rf"Same top p:\s*{_NUMBER}\s*±\s*{_NUMBER}\s*%",
}
_P99 = re.compile(rf"99\.0%\s+KLD:\s*{_NUMBER}")
_CHUNKS = re.compile(r"(?:calculating perplexity|computing) over (\d+) chunks, n_ctx=(\d+)")
_FINAL = re.compile(rf"Final estimate: PPL = {_NUMBER} \+/- {_NUMBER}")


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def parse_kld_output(text: str, seconds: float = 0.0) -> Divergence:
    """The statistics of a ``--kl-divergence`` run (raises ``DivergenceError`` without them)."""
    found: dict[str, tuple[float, float]] = {}
    for key, pattern in _PATTERNS.items():
        match = re.search(pattern, text)
        if match is None:
            raise DivergenceError(f"llama-perplexity printed no '{key}' statistic: {_tail(text)}")
        found[key] = (float(match.group(1)), float(match.group(2)))
    chunks = _CHUNKS.search(text)
    p99 = _P99.search(text)
    return Divergence(
        mean_kld=found["mean_kld"][0],
        mean_kld_pm=found["mean_kld"][1],
        kld_p99=float(p99.group(1)) if p99 else None,
        same_top_percent=found["same_top"][0],
        same_top_pm=found["same_top"][1],
        ppl=found["ppl"][0],
        ppl_pm=found["ppl"][1],
        ppl_base=found["ppl_base"][0],
        ppl_base_pm=found["ppl_base"][1],
        ppl_ratio=found["ppl_ratio"][0],
        ppl_ratio_pm=found["ppl_ratio"][1],
        chunks=int(chunks.group(1)) if chunks else 0,
        ctx=int(chunks.group(2)) if chunks else 0,
        seconds=seconds,
    )


def parse_base_output(text: str) -> tuple[float, float]:
    """The reference's own perplexity (and ±) from the run that saved its logits."""
    match = _FINAL.search(text)
    if match is None:
        raise DivergenceError(f"llama-perplexity printed no final perplexity: {_tail(text)}")
    return float(match.group(1)), float(match.group(2))


# ------------------------------------------------------------------ running it


def _run(command: Sequence[str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise DivergenceError(f"llama-perplexity did not finish within {timeout:.0f} s") from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        raise DivergenceError(f"llama-perplexity exited with {done.returncode}: {_tail(output)}")
    return output, time.monotonic() - started


def text_digest(text: Path) -> str:
    return hashlib.sha256(text.read_bytes()).hexdigest()


def base_path(store_root: Path, reference_sha256: str, text: Path, ctx: int, tokens: int) -> Path:
    """Where the reference's logits for this text and window live in the model store."""
    name = f"{reference_sha256[:16]}-{text_digest(text)[:12]}-c{ctx}-t{tokens}.kld"
    return store_root / ".kld" / name


def ensure_base(
    binary: Path,
    reference: Path,
    reference_sha256: str,
    text: Path,
    ctx: int,
    tokens: int,
    threads: int | None,
    store_root: Path,
    progress: Callable[[str], None] = lambda _msg: None,
) -> tuple[Path, dict[str, Any]]:
    """The reference's logits file and its facts (its perplexity), computed once under a lock.

    The file is written under a temporary name and renamed when complete, and its facts go to a
    ``.json`` beside it last, so an interrupted run never leaves a file that looks complete.
    """
    path = base_path(store_root, reference_sha256, text, ctx, tokens)
    facts_path = path.with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.is_file() and facts_path.is_file():
            return path, json.loads(facts_path.read_text())
        chunks = max(1, tokens // ctx)
        progress(
            f"divergence: reference logits of {reference.name} over {chunks * ctx} tokens "
            f"(once; kept in {path.parent})"
        )
        partial = path.with_suffix(f".part{os.getpid()}")
        command = [str(binary), "-m", str(reference), "-f", str(text), "-c", str(ctx)]
        command += ["--chunks", str(chunks), "--kl-divergence-base", str(partial)]
        command += ["-t", str(threads)] if threads else []
        try:
            output, seconds = _run(command, TIMEOUT_S)
            ppl, ppl_pm = parse_base_output(output)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        facts = {
            "reference": str(reference),
            "reference_sha256": reference_sha256,
            "text": text.name,
            "ctx": ctx,
            "chunks": chunks,
            "ppl": ppl,
            "ppl_pm": ppl_pm,
            "seconds": round(seconds, 2),
        }
        atomic_write_text(facts_path, json.dumps(facts, indent=2) + "\n")
        return path, facts


def measure(
    binary: Path, model: Path, base: Path, threads: int | None, reference_quant: str
) -> Divergence:
    """One quant's divergence from the saved reference logits."""
    command = [str(binary), "-m", str(model), "--kl-divergence-base", str(base)]
    command += ["--kl-divergence"] + (["-t", str(threads)] if threads else [])
    output, seconds = _run(command, TIMEOUT_S)
    measured = parse_kld_output(output, seconds)
    return Divergence(**{**asdict(measured), "reference_quant": reference_quant})


def of_reference(facts: dict[str, Any], reference_quant: str) -> Divergence:
    """The reference cell itself: no loss by definition; its perplexity is the base run's."""
    ppl, pm = float(facts["ppl"]), float(facts["ppl_pm"])
    return Divergence(
        mean_kld=0.0,
        mean_kld_pm=0.0,
        kld_p99=0.0,
        same_top_percent=100.0,
        same_top_pm=0.0,
        ppl=ppl,
        ppl_pm=pm,
        ppl_base=ppl,
        ppl_base_pm=pm,
        ppl_ratio=1.0,
        ppl_ratio_pm=0.0,
        chunks=int(facts["chunks"]),
        ctx=int(facts["ctx"]),
        seconds=0.0,
        reference_quant=reference_quant,
        is_reference=True,
        note="the reference itself: KL divergence 0 and the same top token by definition",
    )


def same_top_reading(percent: float) -> str:
    """ "the most likely next token differs 1 time in 4" """
    differs = 100.0 - percent
    if differs <= 0:
        return "the most likely next token is always the reference's"
    return f"the most likely next token differs 1 time in {max(1, round(100.0 / differs))}"

"""Fine-tuning convergence: can this machine fine-tune this model, and does the loss go down?

llama.cpp's ``llama-finetune`` trains every weight of an F32 model on a text file (windows of
``ctx`` tokens, one every ``ctx / 2``, the last ``val_split`` of them held out for validation) and
prints a progress line per batch; the final ``train:`` line of an epoch carries the mean loss over
that epoch and the ``val:`` line after it the validation loss.  This module runs it as a
subprocess with a timeout, samples the child's RSS, and reads those lines.
"""

from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from pytest_llmbench.errors import LlmbenchError

# Training keeps the weights, their gradients and AdamW's two moments, all F32, plus activations:
# measured 2.5 GB peak RSS for a 0.54 GB F32 file (SmolLM2-135M, ctx 256), i.e. 4.6x.
TRAINING_MEMORY_FACTOR = 5.0
RSS_POLL_S = 0.2


class FinetuneError(LlmbenchError):
    """llama-finetune failed, timed out or printed no epoch; the message ends with its last lines."""


@dataclass(frozen=True)
class Epoch:
    """One epoch as llama-finetune reports it (losses are means over the epoch's windows)."""

    loss: float
    loss_pm: float | None
    accuracy_percent: float
    val_loss: float | None = None
    val_loss_pm: float | None = None
    seconds: float = 0.0  # the trainer's own clock for the training pass (whole seconds)
    windows: int = 0  # training windows of ctx tokens


@dataclass(frozen=True)
class Finetune:
    """A whole run: its epochs and what it cost."""

    epochs: list[Epoch]
    ctx: int
    learning_rate: float
    seconds: float = 0.0  # wall time of the subprocess, model load included
    peak_rss_mb: float | None = None
    model_quant: str = ""
    trained_from: str = ""  # the quant the F32 weights were made from
    text: str = ""

    @property
    def improvement_percent(self) -> float:
        """How much the training loss fell from the first epoch to the last."""
        first, last = self.epochs[0].loss, self.epochs[-1].loss
        return 100.0 * (first - last) / first if first else 0.0

    @property
    def train_tokens_per_sec(self) -> float | None:
        seconds = sum(e.seconds for e in self.epochs)
        tokens = sum(e.windows for e in self.epochs) * self.ctx
        return tokens / seconds if seconds > 0 else None

    def metrics(self) -> dict[str, Any]:
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "loss": [e.loss for e in self.epochs],
            "val_loss": [e.val_loss for e in self.epochs],
            "ctx": self.ctx,
            "learning_rate": self.learning_rate,
            "seconds": round(self.seconds, 2),
            "trainer_peak_rss_mb": self.peak_rss_mb,  # not the server's memory: kept out of memory_gb
            "model_quant": self.model_quant,
            "trained_from": self.trained_from,
            "text": self.text,
            "improvement_percent": self.improvement_percent,
            "train_tokens_per_sec": self.train_tokens_per_sec,
            "first_loss": self.epochs[0].loss,
            "last_loss": self.epochs[-1].loss,
        }


# ------------------------------------------------------------------ reading llama-finetune

_NUM = r"([-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf))"
_PROGRESS = re.compile(
    rf"(train|val):\s*\[[^\]]*\]\s*data=(\d+)/(\d+)\s+loss={_NUM}±{_NUM}\s+acc={_NUM}±{_NUM}%"
    r"\s+t=(\d+):(\d+):(\d+)",
    re.IGNORECASE,
)


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def parse_epochs(text: str) -> list[Epoch]:
    """The epochs of a llama-finetune output, from each completed ``train:``/``val:`` line.

    Progress lines are separated by carriage returns; only a line whose ``data=N/N`` is complete
    closes a pass.  A ``val:`` pass belongs to the ``train:`` pass before it.
    """
    epochs: list[Epoch] = []
    for match in _PROGRESS.finditer(text.replace("\r", "\n")):
        kind, done, total = match.group(1).lower(), int(match.group(2)), int(match.group(3))
        if done != total:
            continue
        loss, acc = float(match.group(4)), float(match.group(6))
        pm = _finite(float(match.group(5)))  # "±nan" over a single window
        hours, minutes, secs = (int(match.group(i)) for i in (8, 9, 10))
        seconds = 3600.0 * hours + 60.0 * minutes + secs
        if kind == "train":
            epochs.append(Epoch(loss, pm, acc, seconds=seconds, windows=total))
        elif epochs and epochs[-1].val_loss is None:
            last = epochs[-1]
            epochs[-1] = Epoch(
                last.loss, last.loss_pm, last.accuracy_percent, loss, pm, last.seconds, last.windows
            )
    return epochs


def min_tokens(ctx: int) -> int:
    """Tokens llama-finetune needs for two windows (one to train on, one to validate)."""
    return 2 * ctx + 1


def too_short(text: Path, ctx: int) -> str | None:
    """Why ``text`` certainly cannot fill two windows of ``ctx`` tokens (a token is at least one
    byte, plus the BOS token), or None."""
    size = text.stat().st_size
    if size + 1 >= min_tokens(ctx):
        return None
    return (
        f"{size} bytes is fewer than the {min_tokens(ctx)} tokens two training windows of "
        f"ctx {ctx} need; use a longer text or a smaller ctx"
    )


# ------------------------------------------------------------------ running it


def command(
    binary: Path,
    model: Path,
    text: Path,
    output: Path,
    epochs: int,
    learning_rate: float,
    ctx: int,
    val_split: float,
    threads: int | None,
) -> list[str]:
    cmd = [str(binary), "-m", str(model), "-f", str(text), "-o", str(output)]
    cmd += ["-c", str(ctx), "-b", str(ctx), "-ub", str(ctx)]
    cmd += ["--epochs", str(epochs), "-lr", repr(float(learning_rate))]
    cmd += ["--val-split", repr(float(val_split))]
    return cmd + (["-t", str(threads)] if threads else [])


def _peak_rss(proc: subprocess.Popen[str], stop: threading.Event, peak: list[int]) -> None:
    try:
        child = psutil.Process(proc.pid)
        while not stop.is_set():
            peak[0] = max(peak[0], child.memory_info().rss)
            stop.wait(RSS_POLL_S)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return


def run(cmd: Sequence[str], timeout: float) -> tuple[str, float, float | None]:
    """Run llama-finetune: its output, wall seconds and peak RSS in MB (sampled)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_peak_rss, args=(proc, stop, peak), daemon=True)
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise FinetuneError(
            f"llama-finetune did not finish within {timeout:.0f} s: {_tail(output)}"
        ) from None
    finally:
        stop.set()
        sampler.join()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        hint = (
            " (the text is too short for two training windows of ctx tokens)"
            if "ggml_opt_dataset_init" in output
            else ""
        )
        raise FinetuneError(f"llama-finetune exited with {proc.returncode}{hint}: {_tail(output)}")
    return output, seconds, (peak[0] / 2**20 if peak[0] else None)


def finetune(
    cmd: Sequence[str], timeout: float, ctx: int, learning_rate: float, **facts: str
) -> Finetune:
    """One training run, read into epochs (raises ``FinetuneError`` when none completed)."""
    output, seconds, peak = run(cmd, timeout)
    epochs = parse_epochs(output)
    if not epochs:
        raise FinetuneError(f"llama-finetune printed no completed epoch: {_tail(output)}")
    return Finetune(epochs, ctx, learning_rate, seconds, peak, **facts)


def curve_reading(epochs: Sequence[Epoch]) -> str:
    """ "2.910 → 2.523 → 2.204" """
    return " → ".join(f"{e.loss:.3f}" for e in epochs)


def not_decreasing(epochs: Sequence[Epoch]) -> str | None:
    """Why the training loss did not fall every epoch, in words, or None when it did."""
    for i in range(1, len(epochs)):
        before, after = epochs[i - 1].loss, epochs[i].loss
        if not after < before:  # a NaN loss is not a decrease either
            return (
                f"training loss did not decrease in epoch {i + 1}: {after:.4f} after {before:.4f} "
                f"(loss per epoch {curve_reading(epochs)}); the model is not learning the text "
                "at this learning rate"
            )
    return None


def improvement_reading(run: Finetune) -> str:
    """ "loss 2.910 → 2.204 over 3 epochs (validation 3.1 → 2.9)" """
    text = f"loss per epoch {curve_reading(run.epochs)} at learning rate {run.learning_rate:g}"
    val = [e.val_loss for e in run.epochs if e.val_loss is not None]
    if len(val) >= 2:
        text += f" (validation loss {val[0]:.3f} → {val[-1]:.3f})"
    return text

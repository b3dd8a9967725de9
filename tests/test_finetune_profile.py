"""The finetune profile: llama-finetune's output read exactly, its settings checked before any
cell, the memory rule for F32 training, and real runs of the embedded model, healthy and broken."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pytest_llmbench import config as cfg
from pytest_llmbench import metrics as m
from pytest_llmbench import models
from pytest_llmbench import termination as t
from pytest_llmbench.binaries import find_tool
from pytest_llmbench.expect import at_least
from pytest_llmbench.workloads import finetune

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
GB = 10**9


def test_each_epoch_is_read_from_its_completed_train_and_val_lines():
    # llama-finetune on the embedded model's F32 weights: 3 epochs, ctx 256, lr 1e-4, Genesis 36
    epochs = finetune.parse_epochs((DATA / "finetune-output.txt").read_text())
    assert [e.loss for e in epochs] == [2.46331, 1.63211, 1.22392]
    assert [e.val_loss for e in epochs] == [2.7585, 2.83167, 2.85494]
    assert [e.loss_pm for e in epochs] == [0.14326, 0.11368, 0.10114]
    assert epochs[0].val_loss_pm is None  # "±nan": one validation window
    assert [(e.windows, e.seconds) for e in epochs] == [(7, 170.0), (7, 169.0), (7, 174.0)]
    assert epochs[2].accuracy_percent == 70.31
    run = finetune.Finetune(epochs, ctx=256, learning_rate=1e-4)
    assert run.improvement_percent == pytest.approx(50.314, abs=1e-3)
    assert run.train_tokens_per_sec == pytest.approx(3 * 7 * 256 / 513)
    with pytest.raises(finetune.FinetuneError, match=r"no completed epoch: .*failed to load"):
        finetune.finetune(["sh", "-c", "echo 'error: failed to load model'"], 30, 256, 1e-4)
    with pytest.raises(finetune.FinetuneError, match="exited with 3: boom"):
        finetune.run(["sh", "-c", "echo boom; exit 3"], 30)


def _epochs(*losses: float) -> list[finetune.Epoch]:
    return [finetune.Epoch(loss, 0.01, 50.0, seconds=2.0, windows=4) for loss in losses]


def test_a_falling_curve_passes_and_a_flat_or_rising_one_says_which_epoch_in_words():
    assert finetune.not_decreasing(_epochs(3.0, 2.5, 2.2)) is None
    problem = finetune.not_decreasing(_epochs(3.0, 2.5, 2.5))
    assert problem == (
        "training loss did not decrease in epoch 3: 2.5000 after 2.5000 (loss per epoch "
        "3.000 → 2.500 → 2.500); the model is not learning the text at this learning rate"
    )
    assert "epoch 2" in finetune.not_decreasing(_epochs(3.0, float("nan")))
    run = finetune.Finetune(_epochs(3.0, 2.4), ctx=64, learning_rate=1e-4)
    assert run.improvement_percent == pytest.approx(20.0)
    assert run.train_tokens_per_sec == pytest.approx(2 * 4 * 64 / 4.0)


def _settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("finetune_yaml", "expected"),
    [
        ("epochs: 0", "thresholds.finetune.epochs = 0: expected at least 1 epoch"),
        ("epochs: -2", "thresholds.finetune.epochs = -2: expected a number ≥ 0"),
        ("val_split: 1.0", "thresholds.finetune.val_split = 1.0: expected a fraction in [0, 1)"),
        ("learning_rate: 0", "thresholds.finetune.learning_rate = 0.0: expected > 0"),
        ("ctx: 64", "thresholds.finetune.ctx = 64: expected a multiple of 256 (llama.cpp pads"),
        ("text: nope.txt", "thresholds.finetune.text = 'nope.txt': no such file"),
        (
            "text: short.txt",
            "thresholds.finetune.text = 'short.txt': too short for one batch: 11 bytes is fewer "
            "than the 513 tokens two training windows of ctx 256 need; use a longer text or a "
            "smaller ctx",
        ),
    ],
)
def test_settings_llama_finetune_cannot_use_are_one_line(tmp_path, finetune_yaml, expected):
    (tmp_path / "short.txt").write_text("Esau Edom.\n")
    path = _settings(tmp_path, f"thresholds:\n  finetune:\n    {finetune_yaml}\n")
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_settings(path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_zero_epochs_is_exit_4_with_one_line(pytester):
    pytester.makefile(".yaml", thresholds="thresholds:\n  finetune:\n    epochs: 0\n")
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: {pytester.path / 'thresholds.yaml'}: thresholds.finetune.epochs = 0: "
        "expected at least 1 epoch"
    ]


def test_the_memory_rule_skips_f32_training_that_would_not_fit_with_the_estimate():
    facts = t.CellFacts("m-Q4_K_M", "m", "7B", 7.0, "Q4_K_M", file_bytes=4_890_000_000)
    memory = t.Memory(available_bytes=24 * GB)
    assert t.training_bytes(facts, 5.0) == pytest.approx(32e9 * 5, rel=1e-6)
    assert t.training_preflight(facts, memory, 5.0) == (
        "pre-flight memory check: F32 fine-tuning needs ~160.0 GB (32.0 GB of F32 weights × 5 "
        "for gradients, optimizer state and activations), 24.0 GB available"
    )
    small = t.CellFacts("s-Q4_1", "s", "135M", 0.135, "Q4_1", file_bytes=90_000_000)
    assert t.training_preflight(small, memory, 5.0) is None


# ------------------------------------------------------------------ real runs of llama-finetune

# Short real runs: 2 epochs at the smallest context llama.cpp allows (256) over 560 tokens, i.e.
# one training window and one held out per epoch: seconds on 2 idle cores, a minute on busy ones.
SHORT = {"epochs": 2, "ctx": 256, "text": "short-genesis36.txt", "max_seconds": 600}


def _short_text(folder: Path) -> Path:
    text = (REPO / "bench" / "data" / "finetune-genesis36.txt").read_text()
    path = folder / SHORT["text"]
    path.write_text(text[:1900])  # 560 tokens: two windows of 256 (one trains, one validates)
    return path


def test_a_real_run_learns_every_epoch_once_per_model(bench_project):
    _short_text(bench_project.path)
    project = bench_project.write(
        quants=("Q4_1", "Q8_0"),
        thresholds={"thresholds": {"finetune": {**SHORT, "min_improvement_percent": 1}}},
        modules=("test_finetune.py",),
    )
    result = project.run("-p", "no:xdist", "-rs", "-m", "finetune")
    result.assert_outcomes(passed=4, skipped=4)
    cells = project.report()["results"]
    trained = [r for r in cells if m.profile_metrics(r, "finetune").get("loss")]
    assert len(trained) == 1  # once per model, on its first cell in run order
    first = trained[0]["cell_id"]
    result.stdout.fnmatch_lines([f"*fine-tuning runs once per model (on {first})*"])
    tuned = m.profile_metrics(trained[0], "finetune")
    losses = tuned["loss"]
    assert len(losses) == 2 and all(a > b for a, b in itertools.pairwise(losses))
    assert tuned["trainer_peak_rss_mb"] > 100 and tuned["trained_from"] == trained[0]["quant"]
    (f32,) = project.model_dir.rglob("*.F32.gguf")
    record = models.ModelStore(project.model_dir).lookup(f32)
    assert record["source"] == "derived" and record["requantized"] and record["sha256"]


def test_a_run_at_a_near_zero_learning_rate_fails_the_convergence_assertion_with_its_numbers(
    tmp_path, shared_model_dir
):
    catalog = cfg.load_catalog(REPO / "models.yaml")
    model = next(m for m in catalog.models if m.id == "smollm2-135m")  # the embedded model
    assert model.source is not None
    quantize = find_tool("llama-quantize")
    store = models.ModelStore(shared_model_dir)
    weights = models.training_weights(
        model, "Q4_1", models.package_file(model.source), store, quantize
    )
    cmd = finetune.command(
        find_tool("llama-finetune"), weights, _short_text(tmp_path), tmp_path / "out.gguf",
        epochs=2, learning_rate=1e-12, ctx=256, val_split=0.1, threads=None,
    )  # fmt: skip
    # llama-finetune aborts at exactly 0, so the broken run is one whose weights barely move
    run = finetune.finetune(cmd, 600, 256, 1e-12)
    assert len(run.epochs) == 2 and abs(run.improvement_percent) < 1
    with pytest.raises(AssertionError) as info:
        at_least(
            "training loss improvement, first to last epoch",
            run.improvement_percent,
            20,
            "%",
            finetune.improvement_reading(run),
        )
    message = str(info.value)
    assert message.startswith("training loss improvement, first to last epoch ")
    assert "% < 20.0 % minimum: loss per epoch " in message and "at learning rate 1e-12" in message
    assert f"{run.epochs[0].loss:.3f} → {run.epochs[1].loss:.3f}" in message

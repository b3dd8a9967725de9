"""Fine-tuning profile: can this machine fine-tune this model, and does the loss go down?

``llama-finetune`` trains the model's F32 weights (made once from the cell's file with
``llama-quantize``) for ``finetune.epochs`` epochs on a small public-domain text; the training
loss must fall every epoch and by the table's minimum improvement overall, within its time limit.
Training needs full-precision weights, so it runs once per model, on the model's first cell in
the run; its other quants skip and say where it ran.
"""

from pathlib import Path

import pytest

from pytest_llmbench import models
from pytest_llmbench.binaries import ToolNotFound
from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import finetune

pytestmark = pytest.mark.finetune

TEXT = Path(__file__).parent / "data" / "finetune-genesis36.txt"


def _first_cell_of_model(items, cell):
    """The first selected finetune cell of ``cell``'s model (selection order is run order)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        other = callspec.params.get("llm_cell") if callspec else None
        if other is not None and other.model.id == cell.model.id and "finetune" in item.keywords:
            return other
    return cell


@pytest.fixture(scope="session")
def trained(request, tmp_path_factory, llm_session, llm_run, llm_cell, llm_settings, llm_results):
    """The model's fine-tuning run, once (on its first cell)."""
    if llm_session.external is not None or llm_run.model_path is None:
        pytest.skip("external server (--llm-server-url): no local model file to train")
    first = _first_cell_of_model(request.session.items, llm_cell)
    if first.id != llm_cell.id:
        pytest.skip(f"fine-tuning runs once per model (on {first.id})")
    limits = llm_settings.thresholds.finetune
    reason = llm_session.training_memory_reason(llm_cell, finetune.TRAINING_MEMORY_FACTOR)
    if reason:
        pytest.skip(reason)
    try:
        binary = llm_session.finetune_binary()
    except ToolNotFound as exc:
        pytest.fail(f"{exc} (build it with scripts/install-llama-finetune.sh)", pytrace=False)
    weights = models.training_weights(
        llm_cell.model,
        llm_cell.quant,
        llm_run.model_path,
        llm_session.model_store(),
        llm_session.quantize_binary(),
        llm_session.progress,
    )
    text = llm_settings.resolve_path(limits.text) if limits.text else TEXT
    out = tmp_path_factory.mktemp("finetune") / "finetuned.gguf"
    llm_session.progress(
        f"finetune: {limits.epochs} epochs of {weights.name} on {text.name} (ctx {limits.ctx})"
    )
    cmd = finetune.command(
        binary,
        weights,
        text,
        out,
        limits.epochs,
        limits.learning_rate,
        limits.ctx,
        limits.val_split,
        llm_session.threads,
    )
    try:
        run = finetune.finetune(
            cmd,
            limits.watchdog_seconds,
            limits.ctx,
            limits.learning_rate,
            model_quant=llm_cell.quant,
            trained_from=llm_cell.quant,
            text=text.name,
        )
    except finetune.FinetuneError as exc:
        pytest.fail(f"fine-tuning did not complete: {exc}", pytrace=False)
    finally:
        out.unlink(missing_ok=True)  # the fine-tuned model is not kept: 0.5 GB per 135M
    llm_results.record(llm_cell, "finetune", run.metrics())
    return run


def test_finetune_completes_every_epoch(trained, llm_settings):
    epochs = llm_settings.thresholds.finetune.epochs
    assert len(trained.epochs) == epochs, (
        f"llama-finetune reported {len(trained.epochs)} of {epochs} epochs"
    )


def test_finetune_loss_decreases_every_epoch(trained):
    problem = finetune.not_decreasing(trained.epochs)
    assert problem is None, problem


def test_finetune_loss_improvement(trained, llm_settings):
    meets(
        metric("finetune.improvement_percent"),
        trained.improvement_percent,
        llm_settings,
        detail=finetune.improvement_reading(trained),
    )


def test_finetune_time(trained, llm_settings):
    tps = trained.train_tokens_per_sec
    meets(
        metric("finetune.seconds"),
        trained.seconds,
        llm_settings,
        what=f"fine-tuning time for {len(trained.epochs)} epochs",
        detail=f"{tps:.0f} training tokens/s" if tps else "training speed not reported",
    )

"""Divergence profile: how much does this quantization change the model's predictions?

``llama-perplexity`` saves the reference file's logits over a fixed public-domain text once
(``divergence.tokens`` tokens at ``divergence.ctx``) and compares each quant with them: the mean
KL divergence of its next-token distributions, how often its most likely token is the
reference's, and the perplexity ratio.  The reference is ``reference:`` in models.yaml, else the
file a derived quant was made from, else the model's highest-precision file on disk.
"""

from pathlib import Path

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import divergence

pytestmark = pytest.mark.divergence

TEXT = Path(__file__).parent / "data" / "genesis-kjv.txt"


@pytest.fixture(scope="session")
def diverged(llm_session, llm_run, llm_server, llm_cell, llm_settings, llm_results):
    """The cell's divergence from its reference, measured once (after the cell has loaded)."""
    if llm_server.external or llm_run.model_path is None:
        pytest.skip("external server (--llm-server-url): no local model file to compare")
    limits = llm_settings.thresholds.divergence
    quant, reference, sha256 = llm_session.reference(llm_cell)
    binary = llm_session.perplexity_binary()
    base, facts = divergence.ensure_base(
        binary,
        reference,
        sha256,
        TEXT,
        limits.ctx,
        limits.tokens,
        llm_session.threads,
        llm_session.model_store().root,
        llm_session.progress,
    )
    if reference.resolve() == llm_run.model_path.resolve():
        measured = divergence.of_reference(facts, quant)
    else:
        measured = divergence.measure(binary, llm_run.model_path, base, llm_session.threads, quant)
    llm_results.record(llm_cell, "divergence", measured.metrics())
    return measured


def test_kl_divergence_from_the_reference(diverged, llm_settings):
    meets(
        metric("divergence.mean_kld"),
        diverged.mean_kld,
        llm_settings,
        what=f"mean KL divergence from {diverged.reference_quant}",
        detail=f"± {diverged.mean_kld_pm:.3g} over {diverged.scored_tokens} tokens; the 99th "
        f"percentile token diverges by {diverged.kld_p99 or 0:.3g}",
    )


def test_same_top_token_as_the_reference(diverged, llm_settings):
    meets(
        metric("divergence.same_top_percent"),
        diverged.same_top_percent,
        llm_settings,
        what=f"same most likely token as {diverged.reference_quant}",
        detail=f"± {diverged.same_top_pm:.2g} %: "
        f"{divergence.same_top_reading(diverged.same_top_percent)}",
    )


def test_perplexity_increase_over_the_reference(diverged, llm_settings):
    meets(
        metric("divergence.ppl_increase_percent"),
        diverged.ppl_increase_percent,
        llm_settings,
        what=f"perplexity increase over {diverged.reference_quant}",
        detail=f"{diverged.ppl:.3g} against {diverged.ppl_base:.3g} (ratio "
        f"{diverged.ppl_ratio:.3f} ± {diverged.ppl_ratio_pm:.3f})",
    )

"""The divergence profile: llama-perplexity's output read exactly, the reference chosen as the
catalog says, and a real run over the embedded model's source and one derived quant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmbench import models
from pytest_llmbench.config import Derivation, Model, PackageSource
from pytest_llmbench.workloads import divergence

DATA = Path(__file__).parent / "data"


def test_kld_statistics_are_read_with_their_plus_minus():
    measured = divergence.parse_kld_output((DATA / "perplexity-kld.txt").read_text(), 15.6)
    assert (measured.mean_kld, measured.mean_kld_pm) == (0.994960, 0.057818)
    assert measured.kld_p99 == 4.117688
    assert (measured.same_top_percent, measured.same_top_pm) == (58.333, 3.112)
    assert (measured.ppl, measured.ppl_base) == (7.780991, 4.050160)
    assert measured.ppl_ratio == 1.921156 and measured.ppl_increase_percent == pytest.approx(
        92.1156
    )
    assert (measured.chunks, measured.ctx, measured.scored_tokens) == (4, 128, 4 * 63)
    assert measured.metrics()["text_tokens"] == 512


def test_the_reference_run_gives_its_perplexity_and_a_broken_run_says_what_it_printed():
    assert divergence.parse_base_output((DATA / "perplexity-base.txt").read_text()) == (
        4.0502,
        0.47853,
    )
    with pytest.raises(divergence.DivergenceError, match=r"no 'ppl' statistic: .*failed to load"):
        divergence.parse_kld_output("main: error: failed to load model 'x.gguf'\n")


def test_same_top_reads_in_words():
    assert divergence.same_top_reading(75.0) == "the most likely next token differs 1 time in 4"
    assert divergence.same_top_reading(100.0).endswith("always the reference's")


def _model(**extra) -> Model:
    files = {"Q4_1": "m.Q4_1.gguf", "Q8_0": "m.Q8_0.gguf", "Q2_K": "m.Q2_K.gguf"}
    return Model(id="m", name="M", size="tiny", params_b=0.1, files=files, **extra)


def test_reference_is_the_catalogs_then_the_source_of_a_derived_quant_then_the_most_precise(
    tmp_path,
):
    store = models.ModelStore(tmp_path)
    assert models.reference_quant(_model(), "Q2_K", store) is None  # nothing on disk
    (tmp_path / "tiny").mkdir()
    for name in ("m.Q4_1.gguf", "m.Q2_K.gguf", "m.Q8_0.gguf"):
        (tmp_path / "tiny" / name).write_bytes(b"x")
    assert models.reference_quant(_model(), "Q2_K", store) == "Q8_0"
    assert models.reference_quant(_model(reference="Q4_1"), "Q2_K", store) == "Q4_1"
    derived = _model(
        source=PackageSource("pkg", "m.Q4_1.gguf", "Q4_1"),
        derive=Derivation("Q4_1", ("Q8_0", "Q2_K")),
    )
    # derived files are never more precise than their source: the Q8_0 made from Q4_1 is not
    # a reference, and each derived quant is measured against the file it was made from
    assert models.reference_quant(derived, "Q2_K", store) == "Q4_1"
    assert models.reference_quant(derived, "Q8_0", store) == "Q4_1"


def test_a_real_run_measures_a_derived_quant_against_its_source_once(bench_project):
    thresholds = {"thresholds": {"divergence": {"tokens": 512, "ctx": 128, "max_kld": 100}}}
    project = bench_project.write(
        quants=("Q4_1", "Q8_0"), thresholds=thresholds, modules=("test_divergence.py",)
    )
    result = project.run("-p", "no:xdist")
    result.assert_outcomes(passed=6)
    cells = {r["cell_id"]: r for r in project.report()["results"]}
    source = cells["smollm2-135m-Q4_1"]["profiles"]["divergence"]["metrics"]
    assert source["is_reference"] and source["mean_kld"] == 0.0
    derived = cells["smollm2-135m-Q8_0"]["profiles"]["divergence"]["metrics"]
    assert derived["reference_quant"] == "Q4_1" and not derived["is_reference"]
    assert 0 < derived["mean_kld"] < 0.05 and derived["same_top_percent"] > 90
    (facts,) = (project.model_dir / ".kld").glob("*.json")
    logits = facts.with_suffix(".kld")
    made = logits.stat().st_mtime_ns
    assert json.loads(facts.read_text())["chunks"] == 4
    again = project.run("-p", "no:xdist", "-k", "Q8_0")
    again.assert_outcomes(passed=3)
    assert logits.stat().st_mtime_ns == made  # the reference's logits were reused

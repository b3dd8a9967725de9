"""Quality profile: does this quantization still answer correctly?

The question set (``bench/data/quality_tests.json`` or ``thresholds.quality.questions``) covers
math word problems, reading comprehension, logical reasoning and format following.  Every
question is asked once through the chat endpoint (the server applies the model's template) at
temperature 0 with a fixed seed and scored automatically; each category must reach its minimum.
Each quant is also compared with the highest-precision quant of the same model in the run.
"""

from pathlib import Path

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import quality

pytestmark = pytest.mark.quality

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def answers(llm_client, llm_server, llm_session, llm_settings, llm_results, llm_cell):
    """The cell's answers to every question, scored once and shared by the tests below."""
    questions = quality.questions_for(llm_settings, DATA)
    measured = quality.measure(llm_client, questions, llm_server.pid)
    llm_results.record(llm_cell, "quality", measured.metrics())
    quality.record_relative(llm_session, llm_cell.model.id)
    return measured


def test_every_question_answered(answers):
    assert not answers.errors, f"the server failed to answer: {'; '.join(answers.errors)}"


@pytest.mark.parametrize("category", quality.CATEGORIES)
def test_category_score(answers, llm_settings, category):
    score = answers.scores.get(category)
    if score is None:
        pytest.skip(f"the question set has no {category} questions")
    missed = ", ".join(answers.missed(category))
    meets(metric(f"quality.{category}_score"), score, llm_settings, detail=f"missed: {missed}")

def test_embedded_model_runs_load_and_interactive(bench_project):
    bench_project.write()
    result = bench_project.run("-v")
    result.assert_outcomes(passed=6)
    report = bench_project.report()
    (cell,) = report["results"]
    assert cell["cell_id"] == "smollm2-135m-Q4_1"
    assert cell["status"] == "passed"
    assert cell["profiles"]["interactive"]["metrics"]["output_tokens"] == 32

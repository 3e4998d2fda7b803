"""The task registry: built-in declarations, plugin directories, duplicate names, config validation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.config import ConfigError, parse_config
from flows.evals import METRICS, TASKS
from flows.evals.registry import load_dir

REPO = Path(__file__).resolve().parents[3]

PLUGIN_YAML = """\
name: {name}
label: Plugin {name}
method: loglikelihood
hook: {hook}.py
metrics:
  - {{name: {name}_acc, label: Plugin accuracy, range: [0, 1]}}
planner: {{requests_per_item: 2}}
"""
PLUGIN_HOOK = """\
def inputs(options, language, translator_model=""):
    return {}


def build_items(options, language, *, seed, translator=None):
    return []


def score(item, output):
    return {}
"""


def write_plugin(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hook = name.replace("-", "_")
    (directory / f"{name}.yaml").write_text(PLUGIN_YAML.format(name=name, hook=hook))
    (directory / f"{hook}.py").write_text(PLUGIN_HOOK)
    return directory


def test_built_in_tasks_in_report_order_with_their_metrics_and_variants():
    assert TASKS.names()[:4] == ["chat", "xquad", "xcsqa", "xnli"]
    assert TASKS.get("chat").metric_names() == ("helpfulness", "lang_match", "tgt_lang", "line_pass_rate")
    assert TASKS.get("xquad").variant_names() == ("en:xx", "xx:xx")
    assert TASKS.get("xcsqa").variant_names() == ("",)
    assert METRICS.get("helpfulness").range == (1.0, 6.0)
    assert [TASKS.get(n).run_seeds([0, 42, 723]) for n in ("xquad", "xnli")] == [[0, 42, 723], [0]]


def test_plugin_directory_registers_its_task_and_metric_once(tmp_path):
    directory = write_plugin(tmp_path / "a", "plugin-a")
    (spec,) = load_dir(directory)
    assert TASKS.get("plugin-a") is spec and METRICS.get("plugin-a_acc").label == "Plugin accuracy"
    assert load_dir(directory) == []  # the same files again: nothing new, no error
    options = spec.options()
    assert options.sample_size is None and not hasattr(options, "sampling")  # loglikelihood: no decoding
    with pytest.raises(ValueError, match="already registered"):
        load_dir(write_plugin(tmp_path / "b", "plugin-a"))


def test_config_loads_include_paths_before_checking_task_names(tmp_path):
    write_plugin(tmp_path / "tasks", "plugin-c")
    text = textwrap.dedent("""\
        name: tiny
        base_models: [{name: a, model: org/a}]
        evaluation:
          include_paths: [tasks]
          tasks:
            plugin-c: {languages: [de]}
            chat:
        """)
    study = parse_config(text, base_dir=tmp_path)
    assert list(study.evaluation.tasks) == ["chat", "plugin-c"]
    assert study.evaluation.tasks["plugin-c"].languages == ["de"]


def test_unknown_task_and_unknown_option_name_the_field_and_line():
    text = textwrap.dedent("""\
        name: tiny
        base_models: [{name: a, model: org/a}]
        evaluation:
          tasks:
            chat: {sample_siz: 3}
            xnlii:
        """)
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    issues = {issue.path: issue for issue in caught.value.issues}
    assert issues["evaluation.tasks.chat.sample_siz"].line == 5
    unknown = issues["evaluation.tasks.xnlii"]
    assert unknown.line == 6 and "known: chat, xquad, xcsqa, xnli" in unknown.message


def test_task_path_environment_variable(tmp_path):
    directory = write_plugin(tmp_path / "env", "plugin-env")
    code = "from flows.evals import TASKS; print(TASKS.get('plugin-env').planner.requests_per_item)"
    env = {"POLYGLOT_TASK_PATH": str(directory), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"

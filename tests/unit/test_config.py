"""The study config: the smoke file, the paper's defaults, and errors that name the field and the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flows.config import (
    ConfigError,
    StudyConfig,
    config_hash,
    dump_schema,
    load_config,
    parse_config,
    parse_mix,
    schema_markdown,
)
from services.common import languages
from services.common.errors import InvalidArgument
from services.common.presets import get_preset

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"

MINIMAL = """\
name: tiny
base_models:
  - name: llama2-7b
    model: meta-llama/Llama-2-7b-hf
evaluation:
  tasks:
    chat:
"""


@pytest.fixture(scope="module")
def smoke() -> StudyConfig:
    return load_config(SMOKE)


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the smoke study -------------------------------------------------------------------------------


def test_smoke_config_loads_with_the_smoke_recipe(smoke):
    assert smoke.name == "smoke" and smoke.is_pipeline_check
    (model,) = smoke.base_models
    spec = model.tiny_random.llama_config
    assert (spec["hidden_size"], spec["intermediate_size"], spec["num_hidden_layers"]) == (128, 256, 2)
    assert (spec["num_attention_heads"], spec["vocab_size"]) == (2, 32000)
    mixes = smoke.data.mixes
    assert (mixes.n, mixes.k, mixes.seed, mixes.build) == (160, 20, 42, ["mono", "multi-2", "multi-3"])
    assert smoke.seeds == [0, 42, 723]
    assert list(smoke.evaluation.tasks) == ["chat", "xquad", "xcsqa", "xnli", "confusion"]
    for task in smoke.evaluation.tasks.values():
        assert 3 <= len(task.languages) <= 6 and task.sample_size


def test_smoke_paths_resolve_against_the_file_and_exist(smoke, shared_dir):
    model = smoke.base_models[0]
    assert (model.tiny_random.tokenizer / "tokenizer.json").is_file()
    assert Path(smoke.data.conversations.source).samefile(shared_dir / "data/oasst/qlora_oa_questions.jsonl")
    tasks = smoke.evaluation.tasks
    for code in tasks["xquad"].languages:
        assert (tasks["xquad"].data_dir / f"xquad.{code}.json").is_file(), code
    for code in tasks["xnli"].languages:
        assert (tasks["xnli"].data_dir / f"xnli_dev-{code}.tsv").is_file(), code
    assert tasks["chat"].alpaca_eval.is_file() and tasks["chat"].oasst_prompts.is_dir()
    assert tasks["xcsqa"].data_dir.is_absolute()


def test_smoke_sampling_presets_with_overrides(smoke):
    tasks = smoke.evaluation.tasks
    assert tasks["chat"].sampling == get_preset("chat").with_overrides(max_tokens=32)
    assert tasks["xquad"].sampling == get_preset("constrained").with_overrides(max_tokens=24)


def test_smoke_mix_languages_have_oasst_rows(smoke, shared_dir):
    import json

    counts: dict[str, int] = {}
    for line in Path(smoke.data.conversations.source).open(encoding="utf-8"):
        code = languages.resolve(json.loads(line)["lang"]).code
        counts[code] = counts.get(code, 0) + 1
    mixes = smoke.data.mixes
    for spec in mixes.specs():
        for code in spec.non_english(mixes.order):
            assert counts[code] >= mixes.k, code
    assert counts["en"] >= mixes.n


# --- the paper's defaults -------------------------------------------------------------------------


def test_defaults_are_the_papers_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = parse_config(MINIMAL)
    t = study.training
    assert (t.lora_r, t.lora_alpha, t.lora_dropout) == (64, 16, 0.05)
    assert (t.learning_rate, t.lr_scheduler, t.warmup_ratio) == (1e-5, "cosine", 0.03)
    assert (t.weight_decay, t.max_grad_norm, t.max_steps) == (0.05, 0.3, 2000)
    assert (t.effective_batch_size, t.max_length) == (64, 1024)
    assert t.gradient_accumulation_steps() == 64 // t.per_device_batch_size
    mixes = study.data.mixes
    assert (mixes.n, mixes.k, mixes.seed) == (3200, 200, 42)
    assert mixes.order == ["es", "ru", "de", "zh", "fr"]
    assert mixes.build == ["mono", "multi-2", "multi-3", "multi-4", "multi-5", "multi-6", "full"]
    assert study.data.lid_threshold == 0.8
    assert study.data.conversations.source == "timdettmers/openassistant-guanaco"
    assert study.seeds == [0, 42, 723]
    assert study.services.model_dump() == {
        "lid": "127.0.0.1:50051",
        "generator": "127.0.0.1:50052",
        "judge": "127.0.0.1:50053",
        "trainer": "127.0.0.1:50054",
    }
    assert study.artifact_store == (tmp_path / ".polyglot" / "artifacts").resolve().as_uri()
    assert not study.is_pipeline_check


def test_a_bare_task_runs_with_its_defaults():
    tasks = parse_config(MINIMAL + "    xquad:\n    xnli: {}\n").evaluation.tasks
    assert tasks["chat"].languages == list(languages.codes(languages.STUDY_LANGUAGES))
    assert tasks["chat"].sample_size == 300 and tasks["chat"].sampling == get_preset("chat")
    assert tasks["xquad"].languages == ["en", "de", "zh", "es", "ru", "hi", "el"]
    assert tasks["xquad"].modes == ["en:xx", "xx:xx"]
    assert tasks["xnli"].languages == ["en", "de", "fr", "zh", "es", "ru", "bg", "hi", "el"]
    assert list(tasks) == ["chat", "xquad", "xnli"]


# --- errors name the field and the line -----------------------------------------------------------


def test_malformed_yaml_names_the_line(tmp_path):
    text = MINIMAL.replace("name: tiny", "name: tiny\nseeds: [0, 42\nreport: {}")
    error = error_of(text, tmp_path)
    assert isinstance(error, InvalidArgument)
    assert error.line is not None and error.line >= line_of(text, "seeds:")
    assert "invalid YAML" in str(error) and f"study.yaml:{error.line}:" in str(error)


def test_wrong_type_names_the_field_and_line(tmp_path):
    text = MINIMAL + "training:\n  lora_r: 64\n  max_steps: many\n"
    error = error_of(text, tmp_path)
    assert error.field == "training.max_steps"
    assert error.line == line_of(text, "max_steps")
    assert f"study.yaml:{error.line}: training.max_steps:" in str(error) and "'many'" in str(error)


def test_unknown_key_is_an_error_naming_it(tmp_path):
    text = MINIMAL + "data:\n  lid_treshold: 0.9\n"
    error = error_of(text, tmp_path)
    assert error.field == "data.lid_treshold"
    assert error.line == line_of(text, "lid_treshold")
    assert "unknown key" in str(error)


def test_unknown_language_is_rejected_with_its_index_and_line(tmp_path):
    text = MINIMAL + "    xquad:\n      languages:\n        - en\n        - de\n        - klingon\n"
    error = error_of(text, tmp_path)
    assert error.field == "evaluation.tasks.xquad.languages[2]"
    assert error.line == line_of(text, "klingon")
    assert "unknown language code 'klingon'" in str(error)


def test_every_error_is_reported(tmp_path):
    text = MINIMAL.replace("name: tiny", "name: Bad Name") + "seeds: [1, 1]\ntraining: {lora_r: 0}\n"
    error = error_of(text, tmp_path)
    assert {issue.path for issue in error.issues} == {"name", "seeds", "training.lora_r"}
    assert len(str(error).splitlines()) == 3


def test_duplicate_keys_are_errors(tmp_path):
    text = MINIMAL + "seeds: [0]\nseeds: [1]\n"
    error = error_of(text, tmp_path)
    assert (error.field, error.line) == ("seeds", line_of(text, "seeds: [1]"))


def test_missing_required_field_and_non_mapping_document(tmp_path):
    error = error_of("name: x\nbase_models: [{name: a, model: org/a}]\n", tmp_path)
    assert error.field == "evaluation" and "Field required" in str(error)
    assert error_of("- just\n- a list\n", tmp_path).line == 1
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_sampling_errors(tmp_path):
    error = error_of(MINIMAL.replace("    chat:", "    chat:\n      sampling: greedy"), tmp_path)
    assert error.field == "evaluation.tasks.chat.sampling" and "unknown sampling preset" in str(error)
    text = MINIMAL.replace("    chat:", "    chat:\n      sampling: {top_p: 1.5}")
    error = error_of(text, tmp_path)
    assert error.field == "evaluation.tasks.chat.sampling.top_p"


# --- paths, environment, overrides ----------------------------------------------------------------


def test_relative_paths_are_relative_to_the_file_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    text = MINIMAL.replace("meta-llama/Llama-2-7b-hf", "../models/local") + (
        "artifact_store: file://../store\ndata:\n  conversations:\n    source: ./data/convs.jsonl\n"
    )
    path = write(tmp_path / "configs", text)
    monkeypatch.chdir("/")
    study = load_config(path)
    assert study.base_models[0].model == str(tmp_path / "models" / "local")
    assert study.artifact_store == (tmp_path / "store").as_uri()
    assert study.data.conversations.source == str(tmp_path / "configs" / "data" / "convs.jsonl")


def test_environment_variables_in_paths(tmp_path, monkeypatch):
    text = MINIMAL.replace("meta-llama/Llama-2-7b-hf", "${POLYGLOT_TEST_MODELS:-./fallback}/m")
    monkeypatch.delenv("POLYGLOT_TEST_MODELS", raising=False)
    assert load_config(write(tmp_path, text)).base_models[0].model == str(tmp_path / "fallback" / "m")
    monkeypatch.setenv("POLYGLOT_TEST_MODELS", "/opt/models")
    assert load_config(write(tmp_path, text)).base_models[0].model == "/opt/models/m"
    error = error_of(MINIMAL.replace("meta-llama/Llama-2-7b-hf", "${POLYGLOT_UNSET_VAR}/m"), tmp_path)
    assert error.field == "base_models[0].model" and "POLYGLOT_UNSET_VAR" in str(error)


def test_overrides_are_applied_and_blamed(tmp_path):
    path = write(tmp_path, MINIMAL)
    study = load_config(path, overrides={"training.max_steps": "5", "data.mixes.build": ["mono"]})
    assert study.training.max_steps == 5 and study.data.mixes.build == ["mono"]
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides={"training.max_steps": "0"})
    assert info.value.field == "training.max_steps" and "from an override" in str(info.value)


# --- sections ---------------------------------------------------------------------------------------


def test_mix_names():
    assert parse_mix("multi-3").non_english(["es", "ru", "de"]) == ("es", "ru")
    mt = parse_mix("multi-2-mt")
    assert (mt.kind, mt.size, mt.machine_translated) == ("multi", 2, True)
    loo = parse_mix("leave-one-out:ru")
    assert (loo.kind, loo.left_out, loo.non_english(["es"])) == ("leave-one-out", "ru", ())
    for bad in ("multi", "multi-x", "leave-one-out:xx", "leave-one-out:deu", "guanaco"):
        with pytest.raises(ValueError):
            parse_mix(bad)


@pytest.mark.parametrize(
    ("mixes", "message"),
    [
        ("{build: [mono, multi-7]}", "i must be in 2..6"),
        ("{n: 100, k: 30, build: [multi-6]}", "needs 150 non-English rows"),
        ("{order: [es, en]}", "English is the base"),
        ("{order: [es, es]}", "duplicate language"),
        ("{build: [mono, mono]}", "duplicate mix"),
    ],
)
def test_mix_recipe_is_checked(tmp_path, mixes, message):
    error = error_of(MINIMAL + f"data:\n  mixes: {mixes}\n", tmp_path)
    assert error.field.startswith("data.mixes") and message in str(error)


def test_store_uris_and_addresses(tmp_path):
    assert parse_config(MINIMAL + "artifact_store: s3://polyglot/runs/\n").artifact_store == "s3://polyglot/runs"
    for bad in (
        "artifact_store: /tmp/x",
        "artifact_store: s3://",
        "services: {lid: localhost}",
        "services: {judge: 'host:70000'}",
    ):
        with pytest.raises(ConfigError):
            parse_config(MINIMAL + bad + "\n")
    ok = parse_config(MINIMAL + "services: {lid: 'dns:///lid.polyglot:50051', judge: '[::1]:50053'}\n")
    assert ok.services.lid == "dns:///lid.polyglot:50051"


def test_base_model_needs_exactly_one_source(tmp_path):
    both = MINIMAL.replace(
        "    model: meta-llama/Llama-2-7b-hf",
        "    model: org/m\n    tiny_random: {llama_config: {hidden_size: 128}, tokenizer: ./tok}",
    )
    assert "exactly one" in str(error_of(both, tmp_path))
    assert "exactly one" in str(error_of(MINIMAL.replace("    model: meta-llama/Llama-2-7b-hf\n", ""), tmp_path))
    tp = MINIMAL.replace("    model: meta", "    tensor_parallel_size: 2\n    model: meta")
    assert "backend: vllm" in str(error_of(tp, tmp_path))


def test_batch_must_split_into_accumulation_steps(tmp_path):
    error = error_of(MINIMAL + "training: {effective_batch_size: 64, per_device_batch_size: 6}\n", tmp_path)
    assert error.field == "training" and "multiple" in str(error)
    study = parse_config(MINIMAL + "training: {effective_batch_size: 64, per_device_batch_size: 8}\n")
    assert study.training.gradient_accumulation_steps(devices=2) == 4


# --- docs and hashing -------------------------------------------------------------------------------


def test_every_field_in_the_schema_is_documented():
    schema = dump_schema()
    undocumented = [
        f"{name}.{field}"
        for name, definition in {"StudyConfig": schema, **schema["$defs"]}.items()
        for field, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not undocumented
    table = schema_markdown()
    assert "| `evaluation.tasks.xquad.modes` |" in table and "| `training.lora_r` | `int` | `64` |" in table


def test_config_hash_is_canonical_and_sensitive(smoke):
    assert config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    assert config_hash({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    again = load_config(SMOKE)
    assert config_hash(again) == config_hash(smoke)
    assert config_hash(smoke.training) != config_hash(smoke.training.model_copy(update={"max_steps": 11}))
    assert len(config_hash(smoke.data.mixes)) == 64


# --- a config that means what it says ---------------------------------------------------------------

TWO_TASKS = MINIMAL + "    xnli:\n      sample_size: 7\n"


def test_a_null_override_skips_a_task_a_bare_name_runs_it(tmp_path):
    path = write(tmp_path, TWO_TASKS)
    assert list(load_config(path).evaluation.tasks) == ["chat", "xnli"]  # `chat:` is null in YAML: defaults
    assert list(load_config(path, {"evaluation.tasks.chat": "null"}).evaluation.tasks) == ["xnli"]
    assert list(load_config(path, {"evaluation.tasks.xquad": "{}"}).evaluation.tasks) == ["chat", "xquad", "xnli"]
    with pytest.raises(ConfigError, match="no evaluation task"):
        load_config(path, {"evaluation.tasks.chat": "null", "evaluation.tasks.xnli": "~"})


def test_tasks_selects_keeping_options_and_blames_unknown_names_on_the_option(tmp_path):
    path = write(tmp_path, TWO_TASKS)
    tasks = load_config(path, tasks=["xnli", "xquad"]).evaluation.tasks
    assert list(tasks) == ["xquad", "xnli"] and tasks["xnli"].sample_size == 7  # xquad: not in the file, defaults
    with pytest.raises(ConfigError) as info:
        load_config(path, tasks=["xnli", "xnil"])
    assert info.value.field == "--tasks" and info.value.line is None
    assert "unknown evaluation task 'xnil'" in str(info.value) and "chat, xquad, xcsqa, xnli" in str(info.value)


def test_paths_the_config_reads_must_exist_when_checked(tmp_path):
    text = MINIMAL.replace("meta-llama/Llama-2-7b-hf", "./models/absent") + (
        "      oasst_prompts: ./prompts\nreport: {output_dir: ./out}\n"
    )
    path = write(tmp_path, text)
    assert load_config(path).report.output_dir == tmp_path / "out"  # unchecked: a plan for another machine
    with pytest.raises(ConfigError) as info:
        load_config(path, check_paths=True)
    located = {(issue.path, issue.line) for issue in info.value.issues}
    assert located == {
        ("base_models[0].model", line_of(text, "absent")),
        ("evaluation.tasks.chat.oasst_prompts", line_of(text, "oasst_prompts")),
    }  # report.output_dir is written, not read: it need not exist
    assert "no such file or directory" in str(info.value)
    (tmp_path / "models" / "absent").mkdir(parents=True)
    (tmp_path / "prompts").mkdir()
    assert load_config(path, check_paths=True).evaluation.tasks["chat"].oasst_prompts == tmp_path / "prompts"
    assert load_config(SMOKE, check_paths=True).name == "smoke"


def test_task_languages_must_be_covered_by_the_benchmark(tmp_path):
    text = MINIMAL + "    xnli:\n      languages: [en, ja]\n"
    error = error_of(text, tmp_path)
    assert (error.field, error.line) == ("evaluation.tasks.xnli.languages[1]", line_of(text, "[en, ja]"))
    assert "xnli has no 'ja' data" in str(error)
    assert parse_config(MINIMAL.replace("    chat:", "    chat:\n      languages: [ja]")).evaluation.tasks


def test_judge_provider_must_be_registered(tmp_path):
    text = MINIMAL + "judge:\n  provider: anthropic\n"
    error = error_of(text, tmp_path)
    assert (error.field, error.line) == ("judge.provider", line_of(text, "anthropic"))
    assert "known: generator, openai" in str(error)


def test_service_settings_stay_out_of_artifact_keys(tmp_path):
    from flows import keys

    study = parse_config(MINIMAL)
    served = study.model_copy(
        update={
            "base_models": [study.base_models[0].model_copy(update={"backend": "vllm", "dtype": "bfloat16"})],
            "judge": study.judge.model_copy(update={"base_url": "http://x/v1", "concurrency": 1}),
        }
    )
    model = "llama2-7b", "ref", "sha"
    assert keys.model_identity(study, *model) == keys.model_identity(served, *model)
    assert keys.shard_identity(study, "chat", "sha", 0) == keys.shard_identity(served, "chat", "sha", 0)
    other_judge = study.model_copy(update={"judge": study.judge.model_copy(update={"model": "gpt-4"})})
    assert keys.shard_identity(other_judge, "chat", "sha", 0) != keys.shard_identity(study, "chat", "sha", 0)


def test_service_settings_reach_the_services_study_run_starts(tmp_path, monkeypatch):
    from flows.local import service_env

    text = MINIMAL.replace("    model: meta", "    backend: vllm\n    dtype: bfloat16\n    model: meta") + (
        "judge: {api_key_env: POLYGLOT_TEST_JUDGE_KEY, concurrency: 3, base_url: 'http://judge/v1'}\n"
    )
    study = parse_config(text)
    monkeypatch.delenv("POLYGLOT_TEST_JUDGE_KEY", raising=False)
    env = service_env(study, {"llama2-7b": "meta-llama/Llama-2-7b-hf"}, tmp_path)
    assert (env["POLYGLOT_GENERATOR_BACKEND"], env["POLYGLOT_GENERATOR_DTYPE"]) == ("vllm", "bfloat16")
    assert (env["POLYGLOT_JUDGE_CONCURRENCY"], env["POLYGLOT_JUDGE_BASE_URL"]) == ("3", "http://judge/v1")
    assert "POLYGLOT_JUDGE_API_KEY" not in env
    monkeypatch.setenv("POLYGLOT_TEST_JUDGE_KEY", "sk-test")
    assert service_env(study, {"llama2-7b": "x"}, tmp_path)["POLYGLOT_JUDGE_API_KEY"] == "sk-test"

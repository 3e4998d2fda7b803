"""The report's language-confusion parts, drawn from the cells' sample logs: the confusion task's matrix of
failing lines with its heatmap, and the line-confusion summary of the other generation tasks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.aggregate import aggregate, cell_slug
from flows.config import ReportConfig, load_config
from flows.evals.confusion import lid_metrics
from flows.figures import render_figures
from flows.grading import check_lines, line_sample
from flows.report import render_report
from flows.results import ItemResult
from flows.samples import dumps_samples

REPO = Path(__file__).resolve().parents[3]
REPLIES = {  # (mix, reply) per item: real sentences, one reply with an English line
    "mono": ["Hoy hace un día precioso y vamos a caminar por el parque.\nThe park is lovely today and full of people.",
             "Me gustaría aprender a cocinar platos tradicionales de mi región."],
    "multi-2": ["Hoy hace un día precioso y vamos a caminar por el parque con mis amigos.",
                "Me gustaría aprender a cocinar platos tradicionales\u2028de mi región."],  # json keeps U+2028 raw
}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory, shared_dir):
    from services.lid.core import LanguageIdentifier

    cfg = load_config(REPO / "configs" / "smoke.yaml")
    out = tmp_path_factory.mktemp("report")
    lid = LanguageIdentifier(word_list=shared_dir / "data" / "lcb" / "words")
    records, links = [], {}
    for mix, replies in REPLIES.items():
        checks = check_lines(lid, replies, ["es"] * len(replies))
        for task, variant in (("confusion", "monolingual"), ("chat", "")):
            cell = []
            for n, (reply, check) in enumerate(zip(replies, checks, strict=True)):
                metrics = lid_metrics(check) if task == "confusion" else {"lang_match": 1.0}
                record = ItemResult("s", "tiny-llama", mix, task, variant, "es", 0, f"i{n}", metrics)
                records.append(record)
                cell.append(record.to_json() | {"reply": reply, "lid_lines": line_sample(check)})
            relative = f"samples/{cell_slug('tiny-llama', mix, task, variant, 'es')}.jsonl"
            (out / relative).parent.mkdir(exist_ok=True)
            (out / relative).write_bytes(dumps_samples(cell))
            links[("tiny-llama", mix, task, variant, "es")] = relative
    result = aggregate(records, ReportConfig(bootstrap_samples=100))
    figures = render_figures(cfg, result.rows, out / "figures", formats=["png", "svg"])
    paths = render_report(cfg, result.rows, result.tests, figures, {}, {}, out, outcomes=result.outcomes,
                          samples=links, versions=[("python", "3.11")])  # fmt: skip
    return out, paths["html"].read_text(), paths["md"].read_text()


def test_the_confusion_task_shows_its_lpr_table_and_matrix_with_a_heatmap(report):
    out, html, md = report
    assert 'id="tiny-llama-confusion-monolingual-lpr"' in html
    matrix = re.search(r'<table id="tiny-llama-confusion-monolingual-confusion-matrix">(.*?)</table>', html, re.S)
    assert matrix and "<th>en</th>" in matrix.group(1)  # the English line of Mono's first reply
    assert (out / "figures" / "tiny-llama-confusion-monolingual-confusion-matrix.svg").is_file()
    assert "](figures/tiny-llama-confusion-monolingual-confusion-matrix.png)" in md


def test_other_generation_tasks_get_a_line_confusion_summary_linked_to_their_samples(report):
    _, html, md = report
    assert '<section id="line-confusion">' in html
    summary = re.search(r'<table id="tiny-llama-chat-line-confusion">(.*?)</table>', html, re.S).group(1)
    assert "0.500" in summary and "→en 1" in summary and "samples/" in summary  # Mono: 1 of 2 replies pass
    assert "Line-level language confusion" in md

"""JSON schema, atomic write/load, Markdown and the generated README block."""

import copy
import json

import pytest

from colorize.benchmarks.markdown import END, START, to_markdown, update_readme
from colorize.benchmarks.report import SCHEMA, load_json, validate_report, write_json


def test_report_validates_and_round_trips(fake_report, tmp_path):
    validate_report(fake_report)
    path = write_json(fake_report, tmp_path / "out" / "bench.json")
    loaded = load_json(path)
    assert loaded["schema"] == SCHEMA
    assert loaded["results"] == json.loads(json.dumps(fake_report["results"]))
    assert not list(path.parent.glob(".*"))  # no temp files left behind


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("machine"), "report.machine: missing"),
        (lambda r: r.update(schema="other/9"), "report.schema"),
        (lambda r: r["results"][0]["latency_ms"].pop("p99"), "results[0].latency_ms.p99: missing"),
        (lambda r: r["results"][0].update(batch="1"), "results[0].batch: expected int, got str"),
        (lambda r: r["results"][0].update(status="fine"), "results[0].status"),
        (lambda r: r["results"][0].update(n=99), "results[0].samples_ms"),
        (lambda r: r["configs"][-1].update(reason=None, status="skipped") or r["results"].append(
            dict(r["results"][0], status="skipped", reason=None)), "reason"),
        (lambda r: r["peaks"]["cpu/fp32"].pop("gflops"), "peaks['cpu/fp32'].gflops"),
    ],
)
def test_schema_errors_name_the_field(fake_report, mutate, field):
    bad = copy.deepcopy(fake_report)
    mutate(bad)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate_report(bad)


def test_load_json_names_the_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: unreadable"):
        load_json(p)
    p.write_text(json.dumps({"schema": SCHEMA}))
    with pytest.raises(ValueError, match="bad.json: report.created: missing"):
        load_json(p)


def test_infinite_ratio_is_written_as_null(fake_report, tmp_path):
    r = copy.deepcopy(fake_report)
    r["results"][0]["vs_baseline"] = {"latency": float("inf"), "throughput": 2.0}
    loaded = load_json(write_json(r, tmp_path / "b.json"))
    assert loaded["results"][0]["vs_baseline"] == {"latency": None, "throughput": 2.0}


def test_markdown_table_and_reasons(fake_report):
    md = to_markdown(fake_report)
    ok = [r for r in fake_report["results"] if r["status"] == "ok"]
    table = [line for line in md.splitlines() if line.startswith("| ") and "×" in line and "backend" not in line]
    assert len(table) == len(ok) == 8  # torch fp32/bf16, fast fp32/int8 at batches 1 and 4
    fast = next(r for r in ok if (r["backend"], r["precision"], r["batch"]) == ("fast", "fp32", 4))
    line = next(x for x in table if x.startswith("| fast | fp32 | 4 |"))
    assert f"{fast['latency_ms']['p50']:.2f}" in line and f"{fast['vs_baseline']['latency']:.2f}" in line
    assert "50% cpu/fp32" in line
    int8 = next(x for x in table if x.startswith("| fast | int8 | 4 |"))
    assert "| – |" in int8  # the fake run measured no int8 peak: no share at all
    # a result file written when int8 rows were held against the bf16 peak renders no share for them either
    old = copy.deepcopy(fake_report)
    for r in old["results"]:
        if r["precision"] == "int8" and r["status"] == "ok":
            r["peak"], r["peak_share"] = "cpu/bf16", 2.59
    old_int8 = next(x for x in to_markdown(old).splitlines() if x.startswith("| fast | int8 | 4 |"))
    assert "259%" not in old_int8 and "| – |" in old_int8
    assert "% of own-precision peak" in md
    assert "`gpu-only/fp16`: skipped: no CUDA device" in md
    assert "Fake CPU" in md and "2026-01-01" in md


README = """# project

## Benchmarks

Some prose.

## Serving

serve text
"""


def test_update_readme_inserts_then_replaces(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(README)
    update_readme(p, "| table v1 |")
    text = p.read_text()
    assert text.index("Some prose.") < text.index("### Performance") < text.index(START) < text.index("v1")
    assert text.index(END) < text.index("## Serving") and text.endswith("serve text\n")
    update_readme(p, "| table v2 |")
    text2 = p.read_text()
    assert "v1" not in text2 and "v2" in text2
    assert text2.count(START) == 1 and text2.count("### Performance") == 1
    assert text2.replace("v2", "v1") == text


def test_update_readme_without_section_fails(tmp_path):
    p = tmp_path / "README.md"
    p.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="README.md: no .*Benchmarks"):
        update_readme(p, "x")


def test_failed_quality_guard_is_flagged(fake_report):
    r = copy.deepcopy(fake_report)
    for c in r["configs"]:
        if (c["backend"], c["precision"]) == ("fast", "int8"):
            c["guard"] = "quality guard FAILED for int8: PSNR 20 dB vs FP32 30 dB"
    validate_report(r)
    md = to_markdown(r)
    assert "| fast | int8 † | 1 |" in md and "| fast | fp32 | 1 |" in md
    assert "`fast/int8`: quality guard FAILED" in md

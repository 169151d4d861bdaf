"""``benchmarks/cold_start.py``: the report it writes and the environment its processes get (no timing here)."""

from pathlib import Path

from colorize.benchmarks.cold_start import LABELS, TARGETS, _env, to_markdown


def test_children_get_their_cache_and_write_bytecode(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = _env(tmp_path / "c")
    assert env["COLORIZE_CACHE"] == str(tmp_path / "c") and "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"].split(":")[0] == str(Path(__file__).resolve().parents[2])


def test_markdown_names_the_cpu_each_figure_and_whether_its_target_is_met():
    results = {k: {"median_s": t + (0.5 if k == "samples_first" else -0.1), "runs_s": [t, t], "target_s": t,
                   "met": k != "samples_first", **({"cpu_median_s": 0.7} if k != "serve_ready" else {})}
               for k, t in TARGETS.items()}
    report = {"machine": {"cpu": "Test CPU 9000", "physical_cores": 2, "usable_cpus": 2, "isa": {"amx_tile": True}},
              "photo": "examples/astronaut.jpg", "engine": "openvino/int8", "results": results,
              "serve_ready_first_on_images_cache_s": 9.5, "stages_s": {"Colorizer.load": 0.3}}
    md = to_markdown(report, "python -m colorize.benchmarks.cold_start --repeat 1")
    assert "Test CPU 9000" in md and "amx_tile" in md and "| Colorizer.load | 0.300 |" in md
    for k in TARGETS:
        row = next(line for line in md.splitlines() if line.startswith(f"| {LABELS[k]} |"))
        assert row.endswith("| no |" if k == "samples_first" else "| yes |"), row
    assert "9.50 s" in md

from colorize.benchmarks.plots import write_plots


def test_plot_files_written(fake_report, tmp_path):
    paths = write_plots(fake_report, tmp_path / "plots")
    assert [p.name for p in paths] == ["throughput.png", "latency.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(x.name for x in (tmp_path / "plots").iterdir()) == ["latency.png", "throughput.png"]


def test_plots_of_a_report_with_nothing_measured(fake_report, tmp_path):
    empty = dict(fake_report, results=[dict(r, status="skipped", reason="x") for r in fake_report["results"]])
    for p in write_plots(empty, tmp_path):
        assert p.stat().st_size > 0

import json

import pytest

from colorize.benchmarks.report import load_json, write_json
from colorize.cli import build_parser, main


def test_bench_is_registered():
    args = build_parser().parse_args(["bench", "--quick", "--sizes", "32,48x64", "--batch-sizes", "1,4"])
    assert args.quick and args.sizes == ((32, 32), (48, 64)) and args.batch_sizes == (1, 4)


@pytest.mark.parametrize(
    "bad", [["--sizes", "0"], ["--sizes", "axb"], ["--batch-sizes", "1,x"], ["--batch-sizes", "0"]]
)
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *bad])
    assert e.value.code == 2


def test_from_json_renders_everything(fake_report, tmp_path, capsys):
    src = write_json(fake_report, tmp_path / "in.json")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Benchmarks\n\ntext\n")
    rc = main(["bench", "--from-json", str(src), "--out", str(tmp_path / "out"), "--readme", str(readme)])
    assert rc == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md", "latency.png", "throughput.png"]
    md = (out / "bench.md").read_text()
    assert md in capsys.readouterr().out
    assert md.strip() in readme.read_text()
    assert "![throughput](out/throughput.png)" in readme.read_text()
    assert load_json(out / "bench.json")["results"] == json.loads(src.read_text())["results"]


def test_from_bad_json_is_a_usage_error(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text("[]")
    assert main(["bench", "--from-json", str(p)]) == 2
    assert "x.json" in capsys.readouterr().err


def test_unknown_backend_exit_2(capsys):
    assert main(["bench", "--quick", "--backends", "nope", "--no-e2e"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_real_quick_run_on_torch(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--backends", "torch", "--precisions", "fp32", "--batch-sizes", "1",
               "--sizes", "16", "--min-iters", "2", "--target-seconds", "0", "--no-e2e", "--json", str(out)])
    assert rc == 0
    report = load_json(out)
    (row,) = report["results"]
    assert (row["backend"], row["precision"], row["batch"], row["height"]) == ("torch", "fp32", 1, 16)
    assert row["status"] == "ok" and row["n"] >= 2 and row["baseline"]
    assert row["vs_baseline"] == {"latency": 1.0, "throughput": 1.0}
    assert row["gflop_per_image"] == pytest.approx(report["model"]["gflop_per_image"]["16x16"])
    assert 0 < row["peak_share"] and row["peak"] == "cpu/fp32"
    assert report["peaks"]["cpu/fp32"]["gflops"] > 0
    assert "| **torch** | fp32 | 1 | 16×16 |" in capsys.readouterr().out


def test_quick_run_on_a_cpu_without_bf16_or_vnni(fake_cpu, tmp_path, capsys):
    """AMD Zen 3 (AVX2 only): bf16 is skipped with the reason, int8 runs, and the run exits 0."""
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    zen3 = fake_cpu("zen3")
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--model", "resnet18-unet", "--backends", "torch,openvino",
               "--precisions", "fp32,bf16,int8", "--batch-sizes", "1", "--sizes", "16", "--min-iters", "2",
               "--target-seconds", "0", "--no-e2e", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err[-2000:]
    report = load_json(out)
    status = {(c["backend"], c["precision"]): (c["status"], c["reason"] or "") for c in report["configs"]}
    for backend in ("torch", "openvino"):
        assert status[(backend, "bf16")][0] == "skipped"
        assert status[(backend, "bf16")][1].startswith("this CPU has no native bf16 (cpuinfo: avx2 fma")
        assert status[(backend, "fp32")][0] == "ok"
    assert status[("openvino", "int8")][0] == "ok" and status[("torch", "int8")] == ("skipped", "torch does not run int8")
    assert {(r["backend"], r["precision"]) for r in report["results"] if r["status"] == "ok"} == {
        ("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")}
    assert "cpu/bf16" not in report["peaks"]
    assert "(without VNNI)" in report["peaks"].get("cpu/int8", {"how": "(without VNNI)"})["how"]
    assert report["machine"]["native"] == zen3.to_dict() == {"bf16": False, "vnni": False, "openvino": list(zen3.openvino)}
    assert "native bf16: no, int8 VNNI: no" in capsys.readouterr().out

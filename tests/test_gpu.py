"""The CUDA paths as a user meets them: resume, CUDA graphs, an explicit GPU index, bench.

Run on a machine with a GPU: ``python -m pytest -m gpu``. Each test skips without CUDA.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import only_run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

GPU_TINY = ["--size", "32", "--load-size", "40", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--no-progress"]


def test_resume_on_the_gpu_continues_the_run(tmp_path, image_dir, run_cli):
    # The checkpoint is mapped onto the GPU; its generator states must go back to the host.
    out = tmp_path / "runs"
    code, _, err = run_cli("train", "--data", image_dir, "--out", out, "--device", "cuda", "--steps", "4",
                           "--save-every", "2", "--eval-every", "100", *GPU_TINY)
    assert code == 0, err
    run = only_run(out)
    code, _, err = run_cli("train", "--resume", run, "--steps", "6")
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["step"] == 6


@pytest.mark.parametrize("fused", ["on", "off"])
def test_cuda_graphs_train_with_either_adam(tmp_path, image_dir, run_cli, fused):
    out = tmp_path / "runs"
    code, _, err = run_cli("train", "--data", image_dir, "--out", out, "--device", "cuda", "--steps", "8",
                           "--cuda-graphs", "on", "--fused-adam", fused, "--norm", "instance", "--batch-size", "1",
                           "--eval-every", "100", "--log-every", "1", "--size", "32", "--load-size", "40",
                           "--ngf", "8", "--ndf", "8", "--no-progress")
    assert code == 0, err
    rows = [json.loads(line) for line in (only_run(out) / "stats.jsonl").read_text().splitlines()]
    losses = [r["G/L1"] for r in rows if "G/L1" in r]
    assert losses and all(v == v for v in losses)  # finite, and the replays trained (not all equal)
    assert len(set(losses)) > 1


def test_an_explicit_gpu_index_becomes_the_current_device():
    from ganlab.runtime import resolve_runtime

    last = torch.cuda.device_count() - 1
    rt = resolve_runtime(f"cuda:{last}")
    assert rt.device == torch.device("cuda", last) and torch.cuda.current_device() == last


def test_a_gpu_index_past_the_last_is_one_line(run_cli, image_dir, tmp_path):
    n = torch.cuda.device_count()
    code, _, err = run_cli("train", "--data", image_dir, "--out", tmp_path, "--device", f"cuda:{n}", *GPU_TINY)
    assert code == 2 and f"cuda:{n}" in err and "Traceback" not in err


def test_bench_on_the_gpu_reports_steady_and_warmup_memory(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    code, _, err = run_cli("bench", "--device", "cuda", "--size", "64", "--batch-size", "4", "--ngf", "16", "--ndf", "16",
                           "--steps", "3", "--warmup", "2", "--rounds", "2", "--variants", "plain,trainer", "--json", out)
    assert code == 0, err
    rows = json.loads(out.read_text())["variants"]
    for row in rows:
        assert row["peak_memory_bytes"] > 0 and row["img_per_s"] > 0
        assert row["warmup_peak_memory_bytes"] is not None

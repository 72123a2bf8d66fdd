"""``ganlab bench``: its figures follow from its measurements and the analytic FLOP count."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from ganlab.bench import cpu_peak_flops, default_variants, gpu_peak_flops, parse_variant
from ganlab.config import TrainConfig
from ganlab.errors import UsageError
from ganlab.train.flops import model_flops, plan_passes, step_flops
from ganlab.nets import build_discriminator, build_generator
from ganlab.train import build_stack, net_spec

TINY = ["--device", "cpu", "--size", "32", "--ngf", "4", "--ndf", "4", "--n-layers", "2", "--batch-size", "2",
        "--warmup", "1", "--steps", "2", "--rounds", "2"]


def expected_flops(tricks=(), d_steps=1, penalties=0, batch=2) -> float:
    cfg = TrainConfig.from_dict(dict(size=32, ngf=4, ndf=4, n_layers=2, batch_size=batch, tricks=list(tricks))).validate()
    stack = build_stack(cfg)
    spec = stack.configure_nets(net_spec(cfg))
    g, d = model_flops(build_generator(spec), build_discriminator(spec), 1, 2, 32)
    return step_flops(g, d, plan_passes(d_steps, 1, penalties), batch)["total"]


def test_bench_runs_variants_side_by_side_and_reports_consistent_figures(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    code, stdout, err = run_cli("bench", *TINY, "--variants", "plain,trainer,trainer+no-fused-adam,trainer+bf16", "--json", out)
    assert code == 0, err
    for word in ("plain", "trainer+no-fused-adam", "img/s", "ms/step", "MFU", "vs plain (paired)", "FLOPs per image"):
        assert word in stdout
    result = json.loads(out.read_text())
    rows = {r["variant"]: r for r in result["variants"]}
    assert list(rows) == ["plain", "trainer", "trainer+no-fused-adam", "trainer+bf16"]
    # Each row's MFU is against the peak of its own precision.
    assert rows["trainer+bf16"]["peak"] >= rows["plain"]["peak"] and "bf16" in rows["trainer+bf16"]["peak_source"]
    flops = expected_flops()
    for name, row in rows.items():
        assert len(row["step_times_ms"]) == 4 and len(row["round_ms"]) == 2
        assert row["ms_per_step"] == pytest.approx(statistics.median(row["step_times_ms"]))
        assert row["img_per_s"] == pytest.approx(2 / (row["ms_per_step"] / 1e3))
        assert row["flops_per_step"] == pytest.approx(flops)  # the step that ran: G, 2 D passes, the G update's D pass
        assert row["mfu"] == pytest.approx(row["flops_per_step"] / (row["ms_per_step"] / 1e3) / row["peak"])
        assert 0 < row["mfu"] <= 1
        ratios = [a / b for a, b in zip(rows["plain"]["round_ms"], row["round_ms"])]
        assert row["speed_vs_plain"] == pytest.approx(statistics.median(ratios))
    assert rows["plain"]["speed_vs_plain"] == 1.0
    assert result["flops_per_image_breakdown"]["total"] == pytest.approx(flops / 2)


def test_bench_counts_the_extra_passes_of_a_trick(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    code, _, err = run_cli("bench", *TINY, "--trick", "wgan-gp:n_critic=2", "--peak-tflops", "0.5", "--json", out)
    assert code == 0, err
    (row,) = json.loads(out.read_text())["variants"]  # on the CPU with a trick: the trainer only
    assert row["variant"] == "trainer"
    # Two critic updates on fresh fakes, each with its gradient-penalty pass, then the G update.
    assert row["flops_per_step"] == pytest.approx(expected_flops(["wgan-gp:n_critic=2"], d_steps=2, penalties=1))
    assert row["flops_per_step"] > 2 * expected_flops()
    assert row["peak"] == 0.5e12 and row["mfu"] == pytest.approx(row["tflops_per_s"] / 0.5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variants", "trainer+turbo"], "unknown setting 'turbo'"),
        (["--variants", "plain+compile"], "plain is the reference loop"),
        (["--variants", "plain", "--trick", "r1"], "plain cannot run --trick r1"),
        (["--variants", "trainer+cuda-graphs"], "--variants trainer+cuda-graphs: CUDA graphs need a CUDA device"),
        (["--variants", "trainer,trainer"], "named twice"),
        (["--steps", "0"], "--steps 0"),
        (["--peak-tflops", "-1"], "--peak-tflops -1"),
        (["--trick", "no-such-trick"], "unknown trick"),
    ],
)
def test_bad_bench_flags_are_one_line_errors(run_cli, args, message):
    code, out, err = run_cli("bench", *TINY, *args)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1


def test_variant_grammar():
    v = parse_variant("trainer+bf16+no-channels-last+compile")
    assert dict(v.overrides) == {"precision": "bf16", "channels_last": "off", "compile": "on"}
    assert parse_variant("plain").plain
    assert default_variants(cuda=False, batch_size=64, tricks=False) == ["plain", "trainer"]
    assert "trainer+cuda-graphs" in default_variants(cuda=True, batch_size=1, tricks=False)
    assert "trainer+cuda-graphs" not in default_variants(cuda=True, batch_size=64, tricks=False)
    with pytest.raises(UsageError):
        parse_variant("trainer++compile")


def test_peak_table():
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3", "bf16")[0] == 989e12
    assert gpu_peak_flops("NVIDIA H100 PCIe", "bf16")[0] == 756e12
    assert gpu_peak_flops("NVIDIA H200", "bf16")[0] == 989e12
    assert gpu_peak_flops("NVIDIA A100-SXM4-80GB", "tf32")[0] == 156e12
    assert gpu_peak_flops("NVIDIA L4", "bf16")[0] == 121e12
    assert gpu_peak_flops("NVIDIA L40S", "bf16")[0] == 362e12
    assert gpu_peak_flops("Tesla V100-SXM2-16GB", "bf16")[0] is None
    peak, why = gpu_peak_flops("Mystery GPU", "bf16")
    assert peak is None and "--peak-tflops" in why
    peak, why = cpu_peak_flops(threads=2)
    assert peak > 1e9 and "estimated" in why


def test_the_cpu_peak_is_the_peak_of_the_precision_that_ran():
    amx = {"avx512_f": True, "avx512_bf16": True, "amx_bf16": True}
    fp32, _ = cpu_peak_flops(threads=2, precision="fp32", caps=amx)
    bf16, why = cpu_peak_flops(threads=2, precision="bf16", caps=amx)
    assert bf16 == 16 * fp32 and "AMX" in why and "bf16 FLOP/cycle" in why
    dot, why = cpu_peak_flops(threads=2, precision="bf16", caps={**amx, "amx_bf16": False})
    assert dot == 2 * fp32 and "AVX512-BF16" in why


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_on_the_gpu(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    gpu = ["--device", "cuda", "--size", "64", "--ngf", "8", "--ndf", "8", "--warmup", "5", "--steps", "5", "--rounds", "2"]
    code, _, err = run_cli("bench", *gpu, "--batch-size", "1", "--variants", "plain,fp32,trainer,trainer+cuda-graphs", "--json", out)
    assert code == 0, err
    rows = {r["variant"]: r for r in json.loads(out.read_text())["variants"]}
    assert rows["trainer"]["precision"] == "bf16"
    assert rows["trainer"]["peak_memory_bytes"] > 0
    assert rows["trainer"]["host_syncs_per_step"] <= 0.2  # only the statistics read-back every 10 steps
    assert rows["trainer+cuda-graphs"]["flops_per_step"] == pytest.approx(rows["trainer"]["flops_per_step"])

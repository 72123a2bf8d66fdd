"""The speed paths behind their flags: device-side batches, fused Adam, compile, CUDA graphs.

What runs on the CPU is checked here against the plain path (same batches, same weights); the
CUDA-only paths have ``gpu`` tests that run where a GPU is present (``pytest -m gpu``).
"""

from __future__ import annotations

import json

import pytest
import torch

from ganlab.data.device import DeviceConvert, DeviceCrops, device_batches
from ganlab.train.checkpoint import portable_optimizer_state
from ganlab.config import TrainConfig
from ganlab.data import build_datasets
from ganlab.errors import UsageError
from ganlab.runtime import resolve_runtime, runtime_for

from conftest import TINY, only_run


def _build(cfg):
    """The model of ``cfg`` with every runtime flag of the configuration applied."""
    from ganlab.train import build_session as build_model

    return build_model(cfg, runtime_for(cfg), cfg.steps)


def _data(folder, task="colorize", cache_gb=1.0):
    cfg = TrainConfig(data=str(folder), task=task, size=32, load_size=40, cache_gb=cache_gb).validate()
    return build_datasets(cfg)[0]


@pytest.mark.parametrize("task", ["colorize", "paired"])
def test_device_batches_equal_the_host_batches(image_dir, paired_dir, task):
    data = _data(image_dir if task == "colorize" else paired_dir, task)
    data.seed(11)
    host = [data.convert(data.draw_uint8(3), torch.device("cpu")) for _ in range(4)]  # crosses epochs
    data.seed(11)
    draw = DeviceCrops(data, torch.device("cpu")).batches(3)
    for cond, target in host:
        c, t = draw()
        assert torch.equal(c, cond) and torch.equal(t, target)
    # And the data's state (for checkpoints) advanced the same way.
    data2 = _data(image_dir if task == "colorize" else paired_dir, task)
    data2.seed(11)
    for _ in range(4):
        data2.draw_uint8(3)
    assert data.state_dict()["perm"] == data2.state_dict()["perm"]


def test_device_convert_matches_the_data_conversion(image_dir):
    data = _data(image_dir)
    batch = data.draw_uint8(2)
    for direction in ("AtoB", "BtoA"):
        ref = data.convert(batch, torch.device("cpu"))
        got = DeviceConvert("colorize", direction, torch.device("cpu"))(batch)
        assert all(torch.equal(a, b) for a, b in zip(ref, got))


def test_device_batches_fall_back_to_the_host_when_images_are_not_cached(image_dir):
    data = _data(image_dir, cache_gb=1e-9)  # nothing fits the cache
    with pytest.raises(ValueError, match="cached"):
        DeviceCrops(data, torch.device("cpu"))
    said = []
    draw = device_batches(data, 2, torch.device("cpu"), said.append)
    assert draw()[0].shape == (2, 1, 32, 32)
    assert "cropping on the host" in said[0]


AMX_CPU = {"architecture": "x86_64", "avx512_f": True, "avx512_bf16": True, "amx_tile": True, "amx_bf16": True}
AVX512_CPU = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}
ARM_CPU = {"architecture": "arm64", "neon": True}


@pytest.mark.parametrize("caps, precision, channels_last, why", [
    (AMX_CPU, "bf16", True, "AMX bf16 matrix units"),
    ({**AVX512_CPU, "avx512_bf16": True}, "bf16", True, "AVX512-BF16"),
    (AVX512_CPU, "fp32", False, "no native bf16"),
    (ARM_CPU, "fp32", False, "no native bf16"),
])
def test_precision_auto_follows_the_cpus_bf16_matrix_instructions(monkeypatch, caps, precision, channels_last, why):
    import ganlab.runtime as rt

    monkeypatch.setattr(rt, "cpu_capabilities", lambda: caps)
    cpu = resolve_runtime("cpu")
    assert (cpu.precision, cpu.channels_last) == (precision, channels_last)
    assert why in cpu.precision_why and cpu.precision_why.startswith("auto: ")
    assert why in cpu.why()
    # An explicit setting wins, and says so.
    pinned = resolve_runtime("cpu", "fp32")
    assert (pinned.precision, pinned.channels_last, pinned.precision_why) == ("fp32", False, "--precision fp32")
    assert resolve_runtime("cpu", "bf16", "off").channels_last is False
    # Without oneDNN nothing is native.
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_runtime("cpu").precision == "fp32"


def test_env_json_and_the_start_line_say_what_was_chosen_and_why(monkeypatch, tmp_path, image_dir, run_cli):
    import ganlab.runtime as rt

    monkeypatch.setattr(rt, "cpu_capabilities", lambda: AMX_CPU)
    flags = [a for a in TINY if a not in ("--precision", "fp32")]  # precision auto
    code, out, err = run_cli("train", *flags, "--data", image_dir, "--steps", "1", "--eval-every", "0", "--save-every", "0",
                             "--out", tmp_path / "runs")
    assert code == 0, err
    env = json.loads((only_run(tmp_path / "runs") / "env.json").read_text())
    assert (env["precision"], env["channels_last"]) == ("bf16", True)
    assert "AMX" in env["precision_why"] and "amx_bf16" in env["cpu_features"]
    assert "chosen: bf16: auto: the CPU has AMX bf16 matrix units" in out + err


def test_runtime_defaults_and_refusals(monkeypatch):
    import ganlab.runtime as rt

    monkeypatch.setattr(rt, "cpu_capabilities", lambda: AVX512_CPU)
    cpu = resolve_runtime("cpu")
    assert (cpu.precision, cpu.channels_last, cpu.fused_adam, cpu.device_data, cpu.compile, cpu.cuda_graphs) == (
        "fp32", False, True, False, False, False)
    assert not resolve_runtime("cpu", fused_adam="off").fused_adam
    with pytest.raises(UsageError, match="--cuda-graphs on needs a CUDA device"):
        resolve_runtime("cpu", cuda_graphs="on")
    with pytest.raises(UsageError, match="cannot run --trick r1"):
        TrainConfig.from_dict({"cuda_graphs": "on", "tricks": ["r1"]}).validate()
    with pytest.raises(UsageError, match="choose one"):
        TrainConfig(cuda_graphs="on", compile="on").validate()
    with pytest.raises(UsageError, match="--compile maybe"):
        TrainConfig(compile="maybe").validate()
    assert runtime_for(TrainConfig(device="cpu", compile="on")).compile


def test_training_with_batches_made_on_the_device_path_gives_the_same_weights(tmp_path, image_dir, run_cli):
    """--device-data on (forced on the CPU here) trains exactly as the host path does."""
    flags = [*TINY, "--data", str(image_dir), "--steps", "3", "--eval-every", "0", "--save-every", "0"]
    code, _, err = run_cli("train", *flags, "--out", tmp_path / "host", "--device-data", "off")
    assert code == 0, err
    code, _, err = run_cli("train", *flags, "--out", tmp_path / "device", "--device-data", "on")
    assert code == 0, err
    a = torch.load(next((only_run(tmp_path / "host") / "checkpoints").glob("step-*.pt")), weights_only=True)
    b = torch.load(next((only_run(tmp_path / "device") / "checkpoints").glob("step-*.pt")), weights_only=True)
    for key, value in a["G"].items():
        assert torch.equal(value, b["G"][key]), key


def test_fused_adam_is_the_same_optimiser():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(50))
    v = torch.nn.Parameter(w.detach().clone())
    opts = [torch.optim.Adam([w], lr=1e-2, betas=(0.5, 0.999)), torch.optim.Adam([v], lr=1e-2, betas=(0.5, 0.999), fused=True)]
    for step in range(5):
        g = torch.randn(50)
        for p, opt in zip((w, v), opts):
            p.grad = g.clone()
            opt.step()
    torch.testing.assert_close(v, w)


def test_checkpoints_keep_plain_learning_rates():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.01), capturable=True)
    state = portable_optimizer_state(opt)
    assert state["param_groups"][0]["lr"] == pytest.approx(0.01) and isinstance(state["param_groups"][0]["lr"], float)
    assert state["param_groups"][0]["capturable"] is False
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)  # the live optimiser is untouched


def test_a_tensor_learning_rate_is_updated_in_place():
    from ganlab.testing import build_tiny, tiny_config
    from ganlab.train import set_learning_rates

    model = build_tiny(tiny_config(lr_decay_steps=4, steps=8))
    lr = torch.tensor(2e-4)
    model.opt_g.param_groups[0]["lr"] = lr
    set_learning_rates(model, 6)  # 3 of 4 decay steps done... the schedule's factor at step 6
    assert model.opt_g.param_groups[0]["lr"] is lr  # the tensor a CUDA graph reads
    assert lr.item() == pytest.approx(model.opt_g.param_groups[0]["base_lr"] * model.lr_factor(6))


@pytest.mark.slow
def test_compiled_forwards_train_like_eager_ones_and_penalties_stay_eager():
    from ganlab.testing import SyntheticPairs, run_iterations, tiny_config

    for tricks in ([], ["r1:gamma=1"]):
        eager = _build(tiny_config(tricks))
        compiled = _build(tiny_config(tricks, compile="on"))
        assert compiled.step_fn._G is not compiled.G
        cfg = eager.cfg
        torch.manual_seed(0)
        run_iterations(eager, SyntheticPairs(cfg), 0, 3)
        torch.manual_seed(0)
        run_iterations(compiled, SyntheticPairs(cfg), 0, 3)
        for a, b in zip(eager.G.parameters(), compiled.G.parameters()):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_step_trains_like_the_eager_step():
    from ganlab.train.graphs import GraphedStep
    from ganlab.stats import StatsBus
    from ganlab.testing import tiny_config
    from ganlab.train import set_learning_rates

    cfg = tiny_config(device="cuda", precision="fp32", batch_size=1, lr_decay_steps=4, steps=10, norm="instance")
    eager, graphed = _build(cfg), _build(cfg.replace(cuda_graphs="on"))
    assert isinstance(graphed.step_fn, GraphedStep)
    gen = torch.Generator(device="cuda").manual_seed(0)
    batches = [(torch.rand(1, 1, 32, 32, device="cuda", generator=gen) * 2 - 1,
                torch.rand(1, 2, 32, 32, device="cuda", generator=gen) * 2 - 1) for _ in range(10)]
    rows = []
    for model in (eager, graphed):
        bus = StatsBus()
        with bus.activate():
            for step, batch in enumerate(batches):
                bus.step = step
                set_learning_rates(model, step)
                model.step_fn(lambda b=batch: b)
        rows.append(dict(bus.flush()))
    for a, b in zip(eager.G.parameters(), graphed.G.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)
    for step in (0, 5, 9):  # the statistics of replayed steps are their own, not the captured step's
        assert rows[1][step]["G/L1"] == pytest.approx(rows[0][step]["G/L1"], rel=1e-3)
    state = portable_optimizer_state(graphed.opt_g)
    assert isinstance(state["param_groups"][0]["lr"], float)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_crops_on_the_gpu_equal_the_host_crops(image_dir):
    data = _data(image_dir)
    data.seed(2)
    host = data.draw_uint8(3)
    data.seed(2)
    assert torch.equal(DeviceCrops(data, torch.device("cuda")).draw_uint8(3).cpu(), host)

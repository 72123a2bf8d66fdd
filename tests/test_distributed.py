"""Training over processes: two gloo processes on the CPU against one process, same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganlab.data.device import draw_crop_plan, host_crops
from ganlab.train.distributed import Dist, GlobalBatchNorm, _global_batchnorm, setup
from ganlab.errors import UsageError

from conftest import only_run


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--size", "32", "--load-size", "40", "--ngf", "4", "--ndf", "4",
        "--batch-size", "4", "--steps", "5", "--device", "cpu", "--precision", "fp32", "--no-progress", "--norm", "batch",
        "--eval-every", "0", "--save-every", "0", "--log-every", "1", "--out", str(out), "--seed", "3",
    ]


def _final_checkpoint(out: Path) -> dict:
    run = only_run(out)
    (ckpt,) = sorted((run / "checkpoints").glob("step-*.pt"))
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_two_processes_train_the_weights_of_one_process(tmp_path, image_dir, run_cli):
    code, _, err = run_cli(*_train_args(image_dir, tmp_path / "one"))
    assert code == 0, err

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ganlab", *_train_args(image_dir, tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one, two = _final_checkpoint(tmp_path / "one"), _final_checkpoint(tmp_path / "two")
    assert one["step"] == two["step"] == 5
    initial = _untrained_state()
    gap = moved = 0.0
    for net in ("G", "D"):
        assert one[net].keys() == two[net].keys()  # synchronised BatchNorm keeps the checkpoint's keys
        for key, a in one[net].items():
            b = two[net][key]
            if a.is_floating_point():
                torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5, msg=f"{net}.{key}")
                gap = max(gap, (a - b).abs().max().item())
                moved = max(moved, (a - initial[net][key]).abs().max().item())
            else:
                assert torch.equal(a, b), f"{net}.{key}"
    assert moved > 1000 * gap  # the runs trained (a run that trained nothing would also match)
    # Only rank 0 wrote: one run folder, with one row per step.
    from ganlab.stats import read_series

    assert [s for s, _ in read_series(only_run(tmp_path / "two") / "stats.jsonl")["G/L1"]] == [0, 1, 2, 3, 4]


def _untrained_state() -> dict:
    from ganlab.trick import NetSpec
    from ganlab.nets import build_discriminator, build_generator

    torch.manual_seed(3)
    spec = NetSpec(size=32, ngf=4, ndf=4)
    return {"G": build_generator(spec).state_dict(), "D": build_discriminator(spec).state_dict()}


def test_the_shards_of_a_global_batch_are_the_one_process_batch(image_dir):
    from ganlab.config import TrainConfig
    from ganlab.data import build_datasets

    cfg = TrainConfig(data=str(image_dir), size=32, load_size=40).validate()
    data, _ = build_datasets(cfg)
    data.seed(5)
    whole = [data.draw_uint8(4) for _ in range(3)]  # crosses an epoch: 4 training images
    shards = []
    for rank in range(2):
        data.seed(5)
        rows = Dist(rank=rank, world_size=2).rows(4)
        shards.append([host_crops(data, draw_crop_plan(data, 4), rows) for _ in range(3)])
    for i in range(3):
        assert torch.equal(torch.cat((shards[0][i], shards[1][i])), whole[i])


def test_global_batchnorm_without_a_group_is_batchnorm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ref.load_state_dict(net.state_dict())
    converted = _global_batchnorm(net)
    assert isinstance(converted[1], GlobalBatchNorm)
    assert converted.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(converted(x), ref(x))


def _bn_worker(rank: int, port: int, x: torch.Tensor, folder: str) -> None:
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        bn = GlobalBatchNorm(3)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        part = x[rank * 2 : rank * 2 + 2].clone().requires_grad_(True)
        y = bn(part)
        (y * _loss_weights()[rank * 2 : rank * 2 + 2]).sum().backward()
        grads = [bn.weight.grad.clone(), bn.bias.grad.clone()]
        for g in grads:
            tdist.all_reduce(g)  # what DistributedDataParallel sums
        torch.save((y.detach(), part.grad, grads, bn.running_mean, bn.running_var), f"{folder}/{rank}.pt")
        tdist.barrier()  # neither process tears the group down while the other still uses it
    finally:
        tdist.destroy_process_group()


def _loss_weights() -> torch.Tensor:
    return torch.linspace(-1, 2, 4 * 3 * 5 * 5).reshape(4, 3, 5, 5)


def test_global_batchnorm_over_two_processes_is_batchnorm_over_the_whole_batch(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.manual_seed(1)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    mp.spawn(_bn_worker, args=(port, x, str(tmp_path)), nprocs=2)
    out = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(2)]

    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * _loss_weights()).sum().backward()
    torch.testing.assert_close(torch.cat((out[0][0], out[1][0])), y.detach())
    torch.testing.assert_close(torch.cat((out[0][1], out[1][1])), xr.grad)
    torch.testing.assert_close(out[0][2][0], ref.weight.grad)
    torch.testing.assert_close(out[0][2][1], ref.bias.grad)
    torch.testing.assert_close(out[1][3], ref.running_mean)
    torch.testing.assert_close(out[1][4], ref.running_var)


def test_the_global_batch_must_split_evenly(monkeypatch):
    from ganlab.config import TrainConfig

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UsageError, match="--batch-size 3: .*multiple of 2"):
        setup(TrainConfig(batch_size=3, device="cpu").validate())
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not setup(TrainConfig(batch_size=3).validate()).enabled


def test_one_process_is_a_no_op():
    d = Dist()
    m = torch.nn.BatchNorm2d(2)
    assert d.sync_batchnorm(m) is m and d.wrap(m) is m
    assert d.broadcast(lambda: 7) == 7
    assert d.rows(4) == range(0, 4)
    assert d.device_arg("auto") == "auto"

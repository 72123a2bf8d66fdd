"""End-to-end runs on generated images: logs, checkpoints, resume, colourise, paired."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, only_run, straight_and_resumed

TAGS = ["D/loss_real", "D/loss_fake", "G/adv", "G/L1", "G/total", "D/out_real", "D/out_fake", "D/acc_real",
        "D/acc_fake", "G/grad_norm", "D/grad_norm", "lr/G", "lr/D", "perf/img_per_s", "val/L1"]


def _tb_tags(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return acc.Tags(), acc


def test_a_20_step_run_writes_logs_config_and_checkpoint(tmp_path, image_dir, run_cli):
    out = tmp_path / "runs"
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "20", "--log-every", "5",
                           "--eval-every", "10", "--save-every", "10", "--out", out)
    assert code == 0, err
    run = only_run(out)
    assert run.name == "00000-colorize-images"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["steps"] == 20 and cfg["size"] == 32 and cfg["tricks"] == []
    assert json.loads((run / "tricks.json").read_text()) == []
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert "torch" in json.loads((run / "env.json").read_text())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "step-0000010.pt", "step-0000020.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000010.png", "step-0000020.png"]  # named by steps done, as checkpoints
    tags, acc = _tb_tags(run)
    for tag in TAGS:
        assert tag in tags["scalars"], tag
    assert len(acc.Scalars("G/L1")) == 20  # one point per step
    assert tags["images"] == ["samples/input|generated|truth"]
    grid = Image.open(run / "samples" / "step-0000020.png")
    assert grid.size[0] == 3 * 32 + 4 * 2  # input | generated | truth
    for line in (run / "stats.jsonl").read_text().splitlines():
        json.loads(line)
    assert "tensorboard --logdir" in err


def test_resume_gives_the_same_weights_as_one_run(tmp_path, image_dir, run_cli):
    common = ["--data", image_dir, *TINY, "--log-every", "3", "--eval-every", "4", "--save-every", "4"]
    a, b, run_b, err = straight_and_resumed(run_cli, tmp_path, common, steps=8, half=4)
    assert "resuming" in err and "from step 4" in err
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    # the logs of the resumed run continue without a duplicated step
    from ganlab.stats import read_series

    steps = [s for s, _ in read_series(run_b / "stats.jsonl")["G/L1"]]
    assert steps == list(range(8))


def test_resume_falls_back_past_a_corrupt_checkpoint(tmp_path, image_dir, run_cli):
    code, _, _ = run_cli("train", "--data", image_dir, *TINY, "--steps", "4", "--save-every", "2", "--out", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    (run / "checkpoints" / "step-0000004.pt").write_bytes(b"truncated")
    code, _, err = run_cli("train", "--resume", run, "--steps", "6", "--no-progress")
    assert code == 0, err
    assert "step-0000004.pt is corrupt" in err and "from step 2" in err


def test_pretraining_is_logged_as_its_own_phase(tmp_path, image_dir, run_cli):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "3", "--pretrain-steps", "3",
                           "--log-every", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    from ganlab.stats import read_series

    series = read_series(only_run(tmp_path / "runs") / "stats.jsonl")
    assert [s for s, _ in series["pretrain/L1"]] == [0, 1, 2]
    assert [s for s, _ in series["G/adv"]] == [3, 4, 5]


def test_paired_run_and_translation(tmp_path, paired_dir, run_cli):
    code, _, err = run_cli("train", "--data", paired_dir, "--task", "paired", "--direction", "AtoB", *TINY,
                           "--steps", "4", "--out", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    code, _, err = run_cli("colorize", run, paired_dir / "pair0.png", "--out", tmp_path / "out")
    assert code == 0, err
    out = Image.open(tmp_path / "out" / "pair0.png")
    assert out.size == (80, 40) and out.mode == "RGB"


def test_colorize_a_folder_of_odd_sized_images(tmp_path, image_dir, run_cli):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    rng = np.random.default_rng(3)
    sizes = {"odd one.png": (37, 53), "nested/tall.jpg": (101, 19), "grey.png": (33, 33), "tiny.png": (5, 7)}
    for name, (h, w) in sizes.items():
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(arr).convert("L") if name == "grey.png" else Image.fromarray(arr)
        img.save(photos / name)
    code, _, err = run_cli("colorize", only_run(tmp_path / "runs"), photos, "--out", tmp_path / "colour")
    assert code == 0, err
    for name, (h, w) in sizes.items():
        out = Image.open((tmp_path / "colour" / name).with_suffix(".png"))
        assert out.size == (w, h) and out.mode == "RGB"
        # the lightness is the input's
        from ganlab.color import rgb_to_lab

        src = np.asarray(Image.open(photos / name).convert("RGB"))
        L_in = rgb_to_lab(torch.from_numpy(src).permute(2, 0, 1).float() / 255)[0]
        L_out = rgb_to_lab(torch.from_numpy(np.asarray(out)).permute(2, 0, 1).float() / 255)[0]
        assert (L_in - L_out).abs().mean() < 2.0  # out-of-gamut clipping and rounding only
    assert "colourised 4 image(s)" in err


@pytest.mark.slow
def test_default_sample_run(tmp_path, run_cli):
    """The README's main job: ``ganlab train`` with no data argument (a few minutes)."""
    code, _, err = run_cli("train", "--no-progress", "--out", tmp_path)
    assert code == 0, err
    run = only_run(tmp_path)
    assert (run / "checkpoints" / "step-0000600.pt").is_file()


def test_missing_backbone_weights_stop_the_run_before_its_folder_exists(tmp_path, image_dir, run_cli, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    out = tmp_path / "runs"
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--generator", "resnet18-unet", "--out", out)
    assert code != 0 and "--backbone-weights none" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # no empty numbered folder left behind


def test_status_says_how_far_a_run_got_and_a_finished_run_is_not_resumed(tmp_path, image_dir, run_cli):
    out = tmp_path / "runs"
    seen = []
    from ganlab.train.checkpoint import write as checkpoint

    real = checkpoint.write_checkpoint  # every checkpoint file, the last one's (written in the background) too

    def spy(run_dir, *a, **k):
        path = real(run_dir, *a, **k)
        seen.append(json.loads((run_dir / "status.json").read_text()))
        return path

    checkpoint.write_checkpoint = spy
    try:
        code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "6", "--save-every", "2", "--out", out)
    finally:
        checkpoint.write_checkpoint = real
    assert code == 0, err
    # status.json is written after each checkpoint: the one read at the next save names the previous
    assert [s["step"] for s in seen] == [0, 2, 4]
    run = only_run(out)
    status = json.loads((run / "status.json").read_text())
    best = status.pop("best")  # the only evaluation, at the end (tests/test_best_checkpoint.py)
    assert status == {"status": "finished", "step": 6, "trained_step": 6, "total": 6}
    assert best["checkpoint"] == "checkpoints/best.pt" and best["step"] == 6
    code, _, err = run_cli("train", "--resume", run)
    assert code == 2 and "finished at step 6 of 6" in err and "--steps N" in err
    code, _, err = run_cli("train", "--resume", run, "--steps", "8", "--no-progress")
    assert code == 0 and "from step 6" in err

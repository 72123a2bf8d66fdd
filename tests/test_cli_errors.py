"""Bad input: one line naming the problem and the fix, a non-zero exit, nothing half-written."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, only_run, write_images


def _one_line_error(code, err, expected_code, *needles):
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_data_folder(tmp_path, run_cli):
    code, _, err = run_cli("train", "--data", tmp_path / "nope", "--out", tmp_path / "runs")
    _one_line_error(code, err, 2, "--data", "no such file or folder")
    assert not (tmp_path / "runs").exists()


def test_empty_data_folder(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("train", "--data", tmp_path / "empty", "--out", tmp_path / "runs")
    _one_line_error(code, err, 2, "no image files")


def test_folder_of_only_greyscale_images(tmp_path, run_cli):
    folder = tmp_path / "grey"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(folder / f"g{i}.png")
    # a colour-mode file with grey content counts as greyscale too
    Image.fromarray(np.repeat(rng.integers(0, 255, (40, 40, 1), dtype=np.uint8), 3, axis=2)).save(folder / "rgb-grey.png")
    code, _, err = run_cli("train", "--data", folder, *TINY, "--out", tmp_path / "runs")
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "no usable colour images" in last and "4 greyscale" in last
    assert not (tmp_path / "runs").exists()


def test_corrupt_files_are_skipped_with_a_warning(tmp_path, run_cli):
    folder = write_images(tmp_path / "mixed", 4)
    (folder / "broken.png").write_bytes(b"not really a png")
    (folder / "empty.jpg").write_bytes(b"")
    code, _, err = run_cli("train", "--data", folder, *TINY, "--steps", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "skipped" in err and "broken.png" in err and "empty.jpg" in err
    assert "2 skipped" in err


def test_paired_image_with_the_wrong_width(tmp_path, run_cli):
    folder = tmp_path / "pairs"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8) + 100).save(folder / "square-ish.png")
    code, _, err = run_cli("train", "--data", folder, "--task", "paired", *TINY, "--out", tmp_path / "runs")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "width must be twice the height" in last and "Traceback" not in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--size", "17"], "--size 17"),
        (["--size", "48"], "multiple of 32"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--lr", "-1"], "--lr -1"),
        (["--lambda-l1", "-5"], "--lambda-l1 -5"),
        (["--steps", "0"], "--steps 0"),
        (["--beta1", "1.5"], "--beta1 1.5"),
        (["--n-layers", "9"], "--n-layers 9"),
        (["--trick", "no-such-trick"], "unknown trick"),
        (["--gan-mode", "magic"], "invalid choice"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--steps", "3", "--epochs", "2"], "not allowed with"),
        (["--device", "tpu"], "--device tpu"),
    ],
)
def test_bad_flags(tmp_path, run_cli, args, needle):
    code, _, err = run_cli("train", *args, "--out", tmp_path / "runs")
    _one_line_error(code, err, 2, needle)
    assert not (tmp_path / "runs").exists()


def test_bad_config_file(tmp_path, run_cli):
    bad = tmp_path / "bad.toml"
    bad.write_text("size = 64\nstepz = 3\n")
    code, _, err = run_cli("train", "--config", bad)
    _one_line_error(code, err, 2, "unknown key 'stepz'")
    bad.write_text("size = 'big'\n")
    code, _, err = run_cli("train", "--config", bad)
    _one_line_error(code, err, 2, "'size'", "should be int")
    bad.write_text("size = [\n")
    code, _, err = run_cli("train", "--config", bad)
    _one_line_error(code, err, 2, "not valid TOML")


def test_config_file_and_flags_layer(tmp_path, run_cli, image_dir):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{image_dir}"\nsize = 64\nsteps = 7\nngf = 8\ntricks = []\n')
    code, out, err = run_cli("train", "--config", cfg, "--size", "32", "--dry-run")
    assert code == 0, err
    import json

    resolved = json.loads(out)["config"]
    assert resolved["size"] == 32 and resolved["steps"] == 7 and resolved["ngf"] == 8
    assert resolved["batch_size"] == 1  # not the sample preset: --data is given


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path, run_cli, image_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--out", ro / "runs")
    _one_line_error(code, err, 2, "--out", "cannot write")


def test_output_folder_that_is_a_file(tmp_path, run_cli, image_dir):
    (tmp_path / "afile").write_text("")
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--out", tmp_path / "afile")
    _one_line_error(code, err, 2, "--out", "cannot write")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, run_cli):
    code, _, err = run_cli("train", "--resume", tmp_path)
    _one_line_error(code, err, 2, "not a ganlab run folder")
    code, _, err = run_cli("train", "--resume", tmp_path / "missing")
    _one_line_error(code, err, 2, "no such run folder")


def test_resume_with_only_corrupt_checkpoints_says_so(tmp_path, run_cli, image_dir):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--out", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.write_bytes(b"garbage")
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 1
    assert "every checkpoint is unusable" in err.strip().splitlines()[-1]
    assert "Traceback" not in err


def test_resume_refuses_to_change_the_networks(tmp_path, run_cli, image_dir):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--out", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    code, _, err = run_cli("train", "--resume", run, "--ngf", "16")
    _one_line_error(code, err, 2, "--ngf cannot change a resumed run")


def test_colorize_bad_inputs(tmp_path, run_cli, image_dir):
    code, _, err = run_cli("colorize", tmp_path / "nothing", image_dir, "--out", tmp_path / "o")
    _one_line_error(code, err, 2, "no such run folder or checkpoint file")
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "1", "--out", tmp_path / "runs")
    code, _, err = run_cli("colorize", only_run(tmp_path / "runs"), tmp_path / "missing.png", "--out", tmp_path / "o")
    _one_line_error(code, err, 2, "missing.png", "no such file")


def test_the_console_script_prints_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "ganlab", "train", "--size", "17"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ganlab: error: --size 17: the networks need a multiple of 32 (e.g. 64, 128, 256)"
    proc = subprocess.run([sys.executable, "-m", "ganlab", "--debug", "train", "--size", "17"], capture_output=True, text=True, env=env)
    assert "Traceback" in proc.stderr

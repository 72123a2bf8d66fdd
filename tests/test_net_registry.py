"""Generators and discriminators come from registries, like tricks: ganlab's own through the
entry points in pyproject.toml, a third party's through its package's, or in this process; the
network conformance checks hold every one of them to the same contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlab.config import TrainConfig
from ganlab.errors import UsageError
from ganlab.nets import NetSpec, blocks, build_discriminator, build_generator, register_discriminator, register_generator
from ganlab.registry import DISCRIMINATORS, GENERATORS
from ganlab.testing import (
    ConformanceError,
    NetConformanceTests,
    check_net_meta,
    check_net_shapes,
    check_net_trains,
    check_network,
)

from conftest import only_run


class ToyGenerator(nn.Module):
    """Two 3x3 convolutions with a norm between them and a tanh: the smallest legal generator."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        width = max(spec.ngf, 2)
        self.body = nn.Sequential(
            nn.Conv2d(spec.in_channels, width, 3, 1, 1, bias=blocks.conv_bias(spec.g_norm)),
            blocks.norm(spec.g_norm, width),
            blocks.act(spec.g_up_act),
            nn.Conv2d(width, spec.out_channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, x):
        return self.body(x)


def build_toy_generator(spec: NetSpec) -> nn.Module:
    G = ToyGenerator(spec)
    blocks.init_weights(G)
    return G


def build_toy_discriminator(spec: NetSpec) -> nn.Module:
    """A 1-layer critic: one strided convolution to a map of scores (wrapped as the spec asks)."""
    conv = nn.Conv2d(spec.in_channels + spec.out_channels, 1, 4, 2, 1)
    for wrap in spec.d_wrap:
        conv = wrap(conv)
    return nn.Sequential(conv)


def test_the_built_in_networks_are_entry_points_of_ganlab():
    declared = {g: {ep.name: ep.value for ep in metadata.entry_points(group=g)} for g in ("ganlab.generators", "ganlab.discriminators")}
    assert declared["ganlab.generators"] == {"unet": "ganlab.nets.unet:build_unet",
                                             "resnet18-unet": "ganlab.nets.resnet_unet:build_resnet18_unet"}
    assert declared["ganlab.discriminators"] == {"patch": "ganlab.nets.patchgan:build_patch",
                                                 "pixel": "ganlab.nets.patchgan:build_pixel"}
    assert GENERATORS.names() == ("unet", "resnet18-unet")  # the default first, then by name
    assert DISCRIMINATORS.names() == ("patch", "pixel")


def test_an_unknown_network_is_refused_naming_the_known_ones():
    with pytest.raises(UsageError, match=r"--generator nope: choose one of unet, resnet18-unet"):
        TrainConfig(generator="nope").validate()
    with pytest.raises(UsageError, match=r"--discriminator nope: unknown discriminator; choose from patch, pixel"):
        build_discriminator(NetSpec(discriminator="nope"))


def test_a_builder_registered_in_process_is_a_valid_choice_and_is_built():
    assert "toy" not in GENERATORS
    with GENERATORS.registered({"toy": build_toy_generator}):
        assert TrainConfig(generator="toy").validate().generator == "toy"
        assert isinstance(build_generator(NetSpec(generator="toy", size=32, ngf=4)), ToyGenerator)
        assert GENERATORS.names() == ("unet", "resnet18-unet", "toy")
    assert "toy" not in GENERATORS  # restored
    with pytest.raises(ValueError, match="plain name"):
        register_generator("bad name", build_toy_generator)
    with pytest.raises(ValueError, match="not a builder"):
        register_discriminator("not-callable", 3)


def test_a_toy_generator_registered_in_process_trains_with_ganlab_train(tmp_path, image_dir):
    from ganlab.train import train

    with GENERATORS.registered({}):
        register_generator("toy", build_toy_generator)  # as a notebook would
        cfg = TrainConfig(data=str(image_dir), size=32, load_size=40, ngf=4, ndf=4, batch_size=2, steps=4, device="cpu",
                          precision="fp32", generator="toy", eval_every=2, save_every=4, log_every=1,
                          out=str(tmp_path / "runs")).validate()
        result = train(cfg, progress=False)
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "config.json").read_text())["generator"] == "toy"
    assert result.run_dir == run
    state = torch.load(run / "checkpoints" / "step-0000004.pt", weights_only=True)
    assert set(state["G"]) == set(ToyGenerator(NetSpec(ngf=4)).state_dict())


# --------------------------------------------------------------------------------------------
# The network conformance checks
# --------------------------------------------------------------------------------------------


class TestToyGenerator(NetConformanceTests):
    kind = "generator"
    net = staticmethod(build_toy_generator)


class TestToyDiscriminator(NetConformanceTests):
    kind = "discriminator"
    net = staticmethod(build_toy_discriminator)


@pytest.mark.parametrize("kind,name", [("generator", "unet"), ("discriminator", "patch"), ("discriminator", "pixel")])
def test_the_built_in_networks_pass_the_network_checks(kind, name):
    assert check_network(kind, name) == {"shapes": "passed", "meta": "passed", "state_round_trip": "passed", "trains": "passed"}


@pytest.mark.slow
def test_the_resnet_unet_passes_the_network_checks():
    assert check_network("generator", "resnet18-unet", config={"backbone_weights": "none"})["trains"] == "passed"


def test_the_network_checks_catch_broken_networks():
    def wrong_channels(spec):
        return nn.Sequential(nn.Conv2d(spec.in_channels, 1, 3, 1, 1), nn.Tanh())

    def unbounded(spec):
        return nn.Sequential(nn.Conv2d(spec.in_channels, spec.out_channels, 3, 1, 1))

    def ignores_the_wrappers(spec):
        return nn.Conv2d(spec.in_channels + spec.out_channels, 1, 4, 2, 1)

    def fixed_device(spec):
        return nn.Sequential(nn.Conv2d(spec.in_channels, spec.out_channels, 3, 1, 1, device="cpu"), nn.Tanh())

    class Frozen(nn.Module):
        def __init__(self, spec):
            super().__init__()
            self.conv = nn.Conv2d(spec.in_channels, spec.out_channels, 3, 1, 1)
            self.conv.requires_grad_(False)

        def forward(self, x):
            return torch.tanh(self.conv(x))

    with pytest.raises(ConformanceError, match=r"maps \(2, 1, 32, 32\) to \(2, 1, 32, 32\)"):
        check_net_shapes("generator", wrong_channels)
    with pytest.raises(ConformanceError, match=r"in \[-1, 1\]"):
        check_net_shapes("generator", unbounded)
    with pytest.raises(ConformanceError, match="spec.d_wrap"):
        check_net_shapes("discriminator", ignores_the_wrappers)
    with pytest.raises(ConformanceError, match="meta device"):
        check_net_meta("generator", fixed_device)
    with pytest.raises(ConformanceError, match="no gradient reaches its parameters"):
        check_net_shapes("generator", Frozen)


# --------------------------------------------------------------------------------------------
# A third-party network, by entry point, in a fresh process
# --------------------------------------------------------------------------------------------

PLUGIN = textwrap.dedent(
    '''
    """A third-party generator; importing it is recorded, to show that listing names does not."""
    import os
    from pathlib import Path

    Path(os.environ["GANLAB_TOYNET_MARK"]).write_text("imported")

    from torch import nn


    def build(spec):
        return nn.Sequential(nn.Conv2d(spec.in_channels, spec.out_channels, 3, 1, 1), nn.Tanh())
    '''
)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "ganlab_toynet.py").write_text(PLUGIN)
    info = root / "ganlab_toynet-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganlab-toynet\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganlab.generators]\ntoynet = ganlab_toynet:build\n")
    return root


def _python(plugin_dir: Path, mark: Path, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH", "")]))
    env["GANLAB_TOYNET_MARK"] = str(mark)
    env["OMP_NUM_THREADS"] = "1"
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_a_plugin_generator_is_a_choice_without_loading_it_or_torch(plugin_dir, tmp_path):
    mark = tmp_path / "mark"
    done = _python(plugin_dir, mark, textwrap.dedent('''
        import sys
        from ganlab.config import TrainConfig
        # best_metric: checking a metric's name is the metrics' business, not the networks'
        print(TrainConfig(generator="toynet", best_metric="none").validate().generator)
        try:
            TrainConfig(generator="nope", best_metric="none").validate()
        except Exception as exc:
            print(exc)
        print("torch loaded" if "torch" in sys.modules else "no torch")
    '''))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["toynet", "--generator nope: choose one of unet, resnet18-unet, toynet", "no torch"]
    assert not mark.exists()  # the plugin's module was never imported


def test_a_plugin_generator_is_listed_by_help_and_built_by_name(plugin_dir, tmp_path):
    mark = tmp_path / "mark"
    done = _python(plugin_dir, mark, textwrap.dedent('''
        from ganlab.cli import main
        main(["train", "--help"])
    '''))
    assert "{unet,resnet18-unet,toynet}" in done.stdout and "{patch,pixel}" in done.stdout
    done = _python(plugin_dir, mark, textwrap.dedent('''
        from ganlab.testing import check_network
        print(check_network("generator", "toynet"))
    '''))
    assert done.returncode == 0, done.stderr
    assert "'trains': 'passed'" in done.stdout and mark.read_text() == "imported"


def test_the_help_text_of_the_network_flags(run_cli):
    code, out, _ = run_cli("train", "--help")
    assert code == 0
    assert "--generator {unet,resnet18-unet}" in out
    assert "--discriminator {patch,pixel}" in out

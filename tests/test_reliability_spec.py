"""A study definition's ``[search]`` ranges are checked against the settings' own bounds when
the file is read, not trial by trial; an objective named twice is refused."""

from __future__ import annotations

import pytest

from ganlab.errors import UsageError
from ganlab.study.spec import builtin_studies, load_study_file, parse_study


@pytest.mark.parametrize("body, needle", [
    ("[search]\nlr = {low = -1e-3, high = 1e-3}", "'search.lr' low = -0.001: --lr -0.001: must be a positive number"),
    ("[search]\nlr = {low = 0.0, high = 1e-3}", "'search.lr' low = 0.0"),
    ("[search]\nbeta1 = {low = 0.0, high = 1.0}", "'search.beta1' high = 1.0: --beta1 1.0: must be in [0, 1)"),
    ("[search]\nsize = {low = 33, high = 40}", "'search.size' = {low = 33, high = 40}: no value in the range is valid"),
    ("[search]\nsize = {low = 32, high = 70}", "the valid ones are 32, 64"),
    ("[search]\nsize = [64, 48]", "'search.size' choice 48: --size 48"),
    ("[train]\nsize = 64\n[search]\nn_layers = {low = 1, high = 6}", "--n-layers 5: too deep for --size 64"),
    ("[study]\nobjectives = [\"swd\", \"swd\"]", "'study.objectives' names 'swd' twice"),
])
def test_out_of_bounds_search_ranges_are_refused_in_one_line(body, needle):
    with pytest.raises(UsageError) as info:
        parse_study(body, "s.toml", "s")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_ranges_inside_the_bounds_and_every_shipped_study_still_parse():
    # n_layers 5 and 6 are too deep at size 32 but fine at the other searched size
    parse_study("[search]\nsize = [32, 256]\nn_layers = {low = 1, high = 6}", "s.toml", "s")
    parse_study("[search]\nlr = {low = 1e-5, high = 1e-3, log = true}\nbeta1 = {low = 0.0, high = 0.9}\n"
                "n_layers = {low = 1, high = 4}\nsize = [32, 64]", "s.toml", "s")
    for path in builtin_studies().values():
        load_study_file(str(path))


def test_the_refusal_reaches_the_command_line(run_cli, tmp_path):
    study = tmp_path / "s.toml"
    # a data folder that does not exist: without the check, the study stops there, before training
    study.write_text(f"[study]\ntrials = 1\nsteps = 1\n[train]\ndata = '{tmp_path / 'none'}'\n"
                     "[search]\nlr = {low = -1e-3, high = 1e-3}\n")
    code, _, err = run_cli("study", "--study", study, "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert code == 2 and "--lr -0.001: must be a positive number" in err and err.count("\n") == 1, err
    assert not (tmp_path / "s.db").exists()

"""A definition's fixed arms ([arms.NAME]): checked before any run, trained by the confirmation
over seeds against the baseline, reported without a search."""

import optuna
import pytest
from optuna.trial import TrialState

from ganlab.errors import UsageError
from ganlab.study.spec import parse_study
from test_study import study_file

ARMS = """
[arms.flip]
tricks = ["label-flip:p=0.1"]

[arms.wide-d]
ndf = 8
"""


def _parse(body: str):
    return parse_study(f"[study]\nname = \"t\"\n{body}\n[train]\nsize = 32\n", "t.toml", "t")


def test_arms_are_parsed_with_typed_settings_and_trick_parameters():
    spec = _parse(ARMS)
    assert not spec.searches
    assert spec.arms == (("flip", (), (("label-flip", (("p", 0.1),)),)), ("wide-d", (("ndf", 8),), ()))


@pytest.mark.parametrize("body, says", [
    ('[arms.a]\ntricks = ["no-such-trick"]\n', "unknown trick 'no-such-trick'"),
    ('[arms.a]\ntricks = ["label-flip:p=2"]\n', "arms.a.tricks"),
    ('[arms.a]\nlr = -1\n', "'arms.a'"),
    ('[arms.a]\nnot_a_setting = 1\n', "unknown key 'not_a_setting'"),
    ('[arms.baseline]\nndf = 8\n', "every confirmation has its own baseline arm"),
    ('[arms.a]\n', "is the baseline's configuration"),
    ('[arms.a]\nndf = 8\n[arms.b]\nndf = 8\n', "'arms.b' is the same configuration as 'arms.a'"),
    ('[arms.a]\nsteps = 10\n', "not per arm"),
    ('[arms.a]\ngan_mode = "rpgan"\ntricks = ["label-flip"]\n', "'arms.a'"),  # no 0/1 targets to flip
    ('[arms.a]\nndf = 8\n[search]\nlr = [1e-4, 2e-4]\n', "a definition gives one or the other"),
    ('[arms.a]\nndf = 8\n[tricks]\noptional = ["label-flip"]\n', "a definition gives one or the other"),
])
def test_a_bad_arm_is_refused_in_one_line_before_any_run(body, says):
    with pytest.raises(UsageError) as err:
        _parse(body)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_study_of_arms_searches_nothing_and_its_confirmation_trains_the_arms(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, "control = false\n" + ARMS)
    runs = tmp_path / "runs"
    code, _, err = run_cli("study", "--study", f, "--runs", runs)
    assert code == 0, err
    assert "compares 2 fixed arms (flip, wide-d) with the baseline: nothing to search" in err
    storage = f"sqlite:///{runs / 'studies.db'}"
    assert optuna.load_study(study_name="tiny", storage=storage).trials == []  # no search trial was trained
    code, _, err = run_cli("confirm", "tiny", "--top", "1", "--runs", runs)
    assert code == 2 and "--top chooses among searched trials" in err
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", runs, "--n-jobs", "1")
    assert code == 0, err
    assert "3 arms (flip, wide-d, baseline) x 2 seeds" in err and "study.control = false" in err
    confirm = optuna.load_study(study_name="tiny-confirm", storage=storage)
    done = [t for t in confirm.trials if t.state == TrialState.COMPLETE]
    assert {(t.user_attrs["arm"]["label"], t.user_attrs["arm"]["seed"]) for t in done} == {
        (a, s) for a in ("flip", "wide-d", "baseline") for s in (1000, 1001)}
    flip = next(t for t in done if t.user_attrs["arm"]["label"] == "flip")
    assert flip.user_attrs["arm"]["tricks"] == [["label-flip", {"p": 0.1}]]
    code, _, err = run_cli("report", "tiny", "--runs", runs)
    assert code == 0, err
    text = (runs / "tiny" / "report" / "report.md").read_text()
    assert "| flip | label-flip:p=0.1 |" in text and "| wide-d | none | ndf=8 |" in text
    assert "# The search" not in text and "nothing was searched" in text and "> Question: a test." in text


def test_the_readme_example_of_arms_is_a_valid_definition():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**Fixed arms instead of a search.**", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    spec = parse_study(block, "README", "x")
    assert [a[0] for a in spec.arms] == ["wgan-gp", "resnet18-pretrained"] and not spec.searches

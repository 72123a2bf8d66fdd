"""A storage URL's password never reaches the terminal: every error of ``study``, ``report``
and ``confirm`` names the storage as ``postgresql://user@host/db`` (a refused connection, a
missing database, an unknown scheme, a missing driver, an unparseable URL)."""

from __future__ import annotations

from pathlib import Path

import pytest


STUDY = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"
SECRET = "S3cretPW"
URLS = [
    f"postgresql://ganlab:{SECRET}@127.0.0.1:1/x",  # nothing listens on port 1
    f"foo://ganlab:{SECRET}@127.0.0.1:1/x",  # unknown scheme
    f"mysql://ganlab:{SECRET}@127.0.0.1:1/x",  # a driver that is not installed
    f"postgresql://ganlab:{SECRET}@127.0.0.1:notaport/x",  # the URL parser quotes the URL
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the runs folder's default lies here


def _commands(url: str, tmp_path: Path) -> list[list[str]]:
    return [["study", "--study", str(STUDY), "--storage", url],
            ["report", "quickstart", "--storage", url],
            ["confirm", "quickstart", "--storage", url],
            ["report", "quickstart", f"--storage={url}"]]


@pytest.mark.parametrize("url", URLS)
def test_storage_errors_never_print_the_password(run_cli, tmp_path, url):
    for args in _commands(url, tmp_path):
        code, out, err = run_cli(*args)
        assert code != 0
        assert SECRET not in out + err, err
        assert "Traceback" not in err and err.strip().count("\n") == 0, err
        assert "ganlab@127.0.0.1" in err or "***" in err, err


def test_a_missing_database_on_a_real_server_does_not_print_the_password(run_cli, tmp_path, postgres_url):
    url = postgres_url.replace("ganlab@", f"ganlab:{SECRET}@").rsplit("/", 1)[0] + "/no_such_database"
    for args in _commands(url, tmp_path):
        code, out, err = run_cli(*args)
        assert code != 0 and SECRET not in out + err, err
        assert "no_such_database" in err and "Traceback" not in err, err


def test_scrub_removes_the_password_also_url_decoded():
    from ganlab.study.storage import redact, scrub

    url = "postgresql://u:p%40ss@h/db"
    assert redact(url) == "postgresql://u@h/db"
    assert scrub(f"bad {url} and p@ss and p%40ss", url) == "bad postgresql://u@h/db and *** and ***"


from test_study_postgres import postgres_url  # noqa: E402,F401 - the real server fixture

"""Outside a checkout: the starter config ships in the package, `newswatch init` writes
it, and every command finds it from any folder (docs/operations.md, "Where newswatch
looks"). HOME and the XDG folders point into tmp_path: the real home is never touched."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.processes import REPO, run_cli
from worker.cli.starter import REFERENCE, STARTER, template


def _home_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg-config"),
        "XDG_DATA_HOME": str(home / "xdg-data"),
    }


def test_the_repository_config_is_what_init_writes():
    """One truth: config/*.yaml in the repository are the package's templates."""
    for name in (STARTER, REFERENCE):
        assert (REPO / "config" / name).read_text(encoding="utf-8") == template(name), name


@pytest.mark.slow
def test_the_wheel_carries_the_starter_config(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("newswatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in (STARTER, REFERENCE):
            shipped = zf.read(f"worker/config/templates/{name}").decode()
            assert shipped == (REPO / "config" / name).read_text(encoding="utf-8")


def test_init_then_check_config_from_another_folder(tmp_path):
    env = _home_env(tmp_path)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    made = run_cli("init", env=env, cwd=here, text=True)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "home" / "xdg-config" / "newswatch" / "newswatch.yaml"
    data = tmp_path / "home" / "xdg-data" / "newswatch"
    assert config.read_text() == template(STARTER)
    assert (config.parent / REFERENCE).read_text() == template(REFERENCE)
    assert data.is_dir()
    assert f"wrote {config}" in made.stdout
    assert f"data folder {data}" in made.stdout
    assert "next: newswatch check-config && newswatch run" in made.stdout
    assert list(here.iterdir()) == []  # nothing in the folder it was run from

    checked = run_cli("check-config", env=env, cwd=elsewhere, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{config}: ok" in checked.stdout
    # the database the commands use is in the per-user data folder, whatever the folder
    status = run_cli("status", env=env, cwd=elsewhere, text=True)
    assert f"no database at {data / 'newswatch.db'}" in status.stderr
    assert list(elsewhere.iterdir()) == []


def test_init_refuses_to_overwrite_a_config(tmp_path):
    env = _home_env(tmp_path)
    assert run_cli("init", str(tmp_path / "proj"), env=env, cwd=tmp_path).returncode == 0
    config = tmp_path / "proj" / "config" / "newswatch.yaml"
    config.write_text("# mine\n")
    again = run_cli("init", str(tmp_path / "proj"), env=env, cwd=tmp_path, text=True)
    assert again.returncode == 1
    assert f"{config} already exists; nothing written" in again.stderr
    assert config.read_text() == "# mine\n"


def test_init_dir_is_found_from_that_folder(tmp_path):
    env = _home_env(tmp_path)
    made = run_cli("init", "proj", env=env, cwd=tmp_path, text=True)
    assert made.returncode == 0, made.stderr
    proj = tmp_path / "proj"
    assert f"next: cd {proj} && newswatch check-config && newswatch run" in made.stdout
    assert (proj / "data").is_dir()
    checked = run_cli("check-config", env=env, cwd=proj, text=True)
    assert checked.returncode == 0, checked.stdout
    assert f"{proj / 'config' / 'newswatch.yaml'}: ok" in checked.stdout


def test_no_config_anywhere_says_to_run_init(tmp_path):
    env = _home_env(tmp_path)
    checked = run_cli("check-config", env=env, cwd=tmp_path, text=True)
    assert checked.returncode == 1
    assert "no config found" in checked.stdout
    assert str(tmp_path / "home" / "xdg-config" / "newswatch" / "newswatch.yaml") in checked.stdout
    assert "run `newswatch init`" in checked.stdout
    # the service commands refuse with the same advice, before creating anything
    run = run_cli("run", env=env, cwd=tmp_path, text=True)
    assert run.returncode == 1
    assert "run `newswatch init`" in run.stderr
    assert list(tmp_path.iterdir()) == []  # no data folder, no home made

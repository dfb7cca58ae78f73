"""docker-compose.yml stays valid (no Docker here) and runs the commands the e2e tests run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_against_the_compose_spec():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    run = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_services_and_commands():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "worker", "beat", "mailcatcher"} <= set(services)
    # the same commands the end-to-end tests start as real processes
    assert services["worker"]["command"][:2] == ["newswatch", "worker"]
    assert services["beat"]["command"] == ["newswatch", "beat"]
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "postgres", "worker", "beat"):
        assert "healthcheck" in services[name], name
    env = services["worker"]["environment"]
    assert env["REDIS_URL"].startswith("redis://") and env["DATABASE_URL"].startswith(
        "postgresql://"
    )

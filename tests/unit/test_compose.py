"""docker-compose.yml stays valid (no Docker here) and runs the commands the e2e tests run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from worker.app import QUEUES

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
    assert {"redis", "postgres", "fetcher", "worker", "beat", "mailcatcher"} <= set(services)
    # the same commands the end-to-end tests start as real processes
    # (test_end_to_end_threads_pool_for_fetch_and_alerts: this split of queues and pools)
    fetcher, worker = services["fetcher"]["command"], services["worker"]["command"]
    assert fetcher[:2] == worker[:2] == ["newswatch", "worker"]
    assert _option(fetcher, "--pool") == "threads" and _option(worker, "--pool") == "prefork"
    # every queue is consumed, each by the pool that suits it
    queues = {*_option(fetcher, "--queues").split(","), *_option(worker, "--queues").split(",")}
    assert queues == set(QUEUES)
    assert set(_option(fetcher, "--queues").split(",")) == {"fetch", "alerts"}
    assert services["beat"]["command"] == ["newswatch", "beat"]
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "postgres", "fetcher", "worker", "beat"):
        assert "healthcheck" in services[name], name
    for name in ("fetcher", "worker"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://") and env["DATABASE_URL"].startswith(
            "postgresql://"
        )


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_each_worker_service_healthcheck_checks_the_queues_it_consumes():
    """One worker service down must not mark the other unhealthy
    (tests/e2e/test_compose_healthchecks.py runs these commands)."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ("fetcher", "worker"):
        check = services[name]["healthcheck"]["test"]
        assert check[:3] == ["CMD", "newswatch", "health"]
        assert _option(check, "--queues") == _option(services[name]["command"], "--queues")
    assert services["beat"]["healthcheck"]["test"][:4] == ["CMD", "newswatch", "health", "--beat"]


def test_every_image_is_pinned_to_a_version():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        if "image" in service:
            _, _, tag = service["image"].partition(":")
            assert tag and tag != "latest", f"{name}: {service['image']}"

"""The healthchecks of docker-compose.yml, run for real: each worker service's checks its
own queues (one service down does not mark the other unhealthy), beat's checks that beat
ticks. The commands are read from the compose file, so the file and the test agree."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.processes import REPO, NewswatchProcesses

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def _healthcheck(service: str) -> list[str]:
    """The service's healthcheck command, less the "CMD" and the `newswatch` in front."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "newswatch"], test
    return test[2:]


def _command(service: str) -> list[str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = list(compose["services"][service]["command"])
    assert command.pop(0) == "newswatch"
    if "--concurrency" in command:  # sized for a real host; the test gives its own
        at = command.index("--concurrency")
        del command[at : at + 2]
    return command


def test_each_service_healthcheck_checks_its_own_part(tmp_path, redis_url):
    config = tmp_path / "newswatch.yaml"
    config.write_text("allow_empty: true\nsources: []\nwatchlists: []\nchannels: []\n")
    procs = NewswatchProcesses(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'newswatch.db'}",
            "NEWSWATCH_CONFIG": str(config),
        },
    )
    with procs:
        # before beat has ever ticked: its healthcheck fails, and says why
        beat_check = procs.cli(*_healthcheck("beat"))
        assert beat_check.returncode == 1
        assert "no beat has ticked" in beat_check.stderr

        procs.start("worker", *_command("worker"), "--concurrency=1", "--hostname=worker@%h")
        procs.start("fetcher", *_command("fetcher"), "--concurrency=2", "--hostname=fetcher@%h")
        procs.start("beat", *_command("beat"))
        for service in ("worker", "fetcher"):
            procs.wait_for(
                lambda s=service: procs.cli(*_healthcheck(s), timeout=60).returncode == 0,
                90,
                f"{service}'s healthcheck to pass",
            )
        check = procs.cli(*_healthcheck("worker"), timeout=60)
        assert "control -> parse -> rules" in check.stdout, check.stdout + check.stderr
        check = procs.cli(*_healthcheck("fetcher"), timeout=60)
        assert "fetch -> alerts" in check.stdout, check.stdout + check.stderr
        beat_check = procs.wait_for(
            lambda: (c := procs.cli(*_healthcheck("beat"))).returncode == 0 and c,
            60,
            "beat's healthcheck to pass",
        )
        assert beat_check.stdout.startswith("ok: beat (")

        # the fetcher down: its own check fails, the worker's still passes
        procs.stop("fetcher")
        down = procs.cli(*_healthcheck("fetcher")[:-1], "3", timeout=60)  # --timeout 3
        assert down.returncode == 1
        assert "did not come back within 3s (no worker took it)" in down.stderr
        assert procs.cli(*_healthcheck("worker"), timeout=60).returncode == 0

        # a queue that does not exist is refused, naming the queues
        bad = procs.cli("health", "--queues", "fetch,nope")
        assert bad.returncode == 2
        assert "unknown queue nope; the queues are control, fetch, parse, rules, alerts" in (
            bad.stderr
        )

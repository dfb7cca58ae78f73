"""The compose file's `web` service: the dashboard behind a token, on loopback only."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_web_service_needs_a_token_and_publishes_on_loopback_only():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    web = services["web"]
    assert web["command"][:2] == ["newswatch", "web"]
    # it listens on every address of its container, which `newswatch web` allows only
    # with a token: the service passes one on
    assert web["command"][web["command"].index("--host") + 1] == "0.0.0.0"
    assert web["environment"]["NEWSWATCH_WEB_TOKEN"] == "${NEWSWATCH_WEB_TOKEN:-}"
    assert web["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert all(str(p).startswith("127.0.0.1:") for p in web["ports"])
    assert "X-Newswatch-Token" in " ".join(web["healthcheck"]["test"])

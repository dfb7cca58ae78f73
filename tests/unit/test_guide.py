"""docs/guide.md, the user's guide (issue 13): it covers what a new user needs, and every
`newswatch …` command it shows is one the parser accepts (a renamed flag fails here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from worker.cli import build_parser

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"

TOPICS = [  # heading words: add a source and a watchlist, see what matched, read an
    "Add a source",  # alert, upgrade, back up and restore, troubleshoot
    "Add a watchlist",
    "See what matched",
    "Read an alert",
    "When something is wrong",
    "Upgrade",
    "Back up and restore",
]


def _commands(text: str) -> list[str]:
    """Each `newswatch …` invocation in the guide's shell blocks and inline code."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = [line.split("#", 1)[0] for block in blocks for line in block.splitlines()]
    lines += re.findall(r"`((?:NEWSWATCH_\w+=\S+ )?newswatch [^`]+)`", text)
    out = []
    for line in lines:
        for part in line.split("&&"):
            found = re.search(r"(?:^|\s|/)newswatch (.+)", part.strip())
            if found and found.group(1) != "…":  # "newswatch …": any command
                out.append(found.group(1).strip())
    return out


def test_the_guide_covers_what_a_new_user_needs():
    text = GUIDE.read_text()
    headings = re.findall(r"^## .*$", text, flags=re.M)
    for topic in TOPICS:
        assert any(topic in h for h in headings), topic
    assert "NEWSWATCH_LOG_LEVEL=DEBUG" in text
    assert all(unit in text for unit in ("`30s`", "`5m`", "`1h`")) and "every: 10" in text


@pytest.mark.parametrize("command", _commands(GUIDE.read_text()))
def test_each_command_in_the_guide_parses(command: str):
    args = shlex.split(command.replace("ID-PREFIX", "abc1").replace("NAME", "wire"))
    build_parser().parse_args(args)  # SystemExit(2) on an unknown command or flag

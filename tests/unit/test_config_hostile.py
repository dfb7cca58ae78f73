"""Hostile and broken config files, and hostile links meeting a user's pattern (issues 10, 11).

The corpus in tests/data/hostile-config/ is data: each file with what `check-config` must
say about it (file, line, what is wrong). The pattern tests show that `follow:` runs with
RE2: what Python's `re` would backtrack on for ever returns at once, and what only a
backtracking engine can run is refused when the config is checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.processes import run_cli
from worker import cli
from worker.config import MAX_CONFIG_BYTES, ConfigError, load_config
from worker.core.patterns import PatternError, compile_pattern
from worker.sources.feeds import MAX_PAGE_ANCHORS, FeedError, page_links

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "hostile-config"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())
VALID = """\
sources:
  - name: wire
    feed: https://example.org/rss.xml
watchlists:
  - name: people
    keywords: [troops]
"""


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(["check-config", "--config", str(path)])
    return code, capsys.readouterr().out.splitlines()


def returns(fn: Callable[[], Any], guard: float = 120.0) -> Any:
    """fn() in a thread; a hang guard only (the assertion is on the result, not the time)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(guard)
    assert not thread.is_alive(), "did not return: a backtracking pattern engine?"
    return out[0]


# --- the corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_config_corpus(name, capsys):
    path = CORPUS / name
    code, lines = returns(lambda: check_config(path, capsys))
    assert code == 1
    assert lines and all(re.match(rf"{re.escape(str(path))}:\d+: ", x) for x in lines), lines
    for line, text in EXPECTED[name]:
        assert any(x.startswith(f"{path}:{line}: ") and text in x for x in lines), (text, lines)


def test_every_corpus_file_has_its_expectation():
    assert sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml") == sorted(
        EXPECTED
    )


def test_duplicate_top_level_key_exactly(tmp_path, capsys):
    """Case 14: two `watchlists:` blocks; the first used to vanish and check-config said ok."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(VALID + "channels: []\nwatchlists:\n  - {name: places, keywords: [Mosul]}\n")
    assert check_config(cfg, capsys) == (
        1,
        [f"{cfg}:8: duplicate key 'watchlists' (first at line 4)"],
    )


def test_a_section_set_in_two_files_of_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(VALID + "smtp: {host: mail.example.org}\n")
    (tmp_path / "b.yaml").write_text("# the second file\nsmtp: {host: other.example.org}\n")
    assert check_config(tmp_path, capsys) == (
        1,
        [f"{tmp_path / 'b.yaml'}:2: section 'smtp' is also set in {tmp_path / 'a.yaml'}:7; "
         "set it in one file"],
    )  # fmt: skip


def test_ordinary_anchors_aliases_and_merge_keys_still_work(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "x-defaults: &defaults\n"  # 1
        "  every: 10m\n"  # 2
        "  respect_robots: false\n"  # 3
        "x-desks: &desks [desk, ops]\n"  # 4
        "sources:\n"  # 5
        "  - <<: *defaults\n"  # 6
        "    name: a\n"  # 7
        "    feed: https://example.org/a.xml\n"  # 8
        "  - <<: *defaults\n"  # 9
        "    name: b\n"  # 10
        "    feed: https://example.org/b.xml\n"  # 11
        "    every: 1h\n"  # 12: written here, wins over the defaults
        "watchlists:\n"
        "  - {name: w1, keywords: [troops], notify: *desks}\n"
        "  - {name: w2, keywords: [Mosul], notify: *desks}\n"
        "channels:\n"
        "  - {name: desk, email: [desk@example.org]}\n"
        "  - {name: ops, file: ops.jsonl}\n"
    )
    loaded = load_config(cfg, env={})
    a, b = loaded.config.sources
    assert (a.every, a.respect_robots, b.every, b.respect_robots) == (600, False, 3600, False)
    assert [w.notify for w in loaded.config.watchlists] == [("desk", "ops")] * 2
    # a merged key's line is where it is written: the defaults block, or the override
    assert loaded.where("sources", 0, "every") == (str(cfg), 2)
    assert loaded.where("sources", 1, "every") == (str(cfg), 12)
    cfg.write_text(cfg.read_text().replace("every: 10m", "every: ten minutes"))
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{cfg}:2: sources[a].every: 'ten minutes' is not an interval; "
        "write e.g. 30s, 5m, 1h30m or 1d"
    ]


def test_a_config_file_over_the_size_limit_is_refused(tmp_path, capsys):
    cfg = tmp_path / "big.yaml"
    cfg.write_bytes(VALID.encode() + b"#" * (MAX_CONFIG_BYTES - len(VALID)) + b"\n")
    code, lines = check_config(cfg, capsys)
    assert (code, lines) == (1, [f"{cfg}: larger than 16 MiB; split it"])


# --- a config that would watch nothing ---------------------------------------------------------


def test_an_empty_folder_is_refused_and_allow_empty_accepts_it(tmp_path, capsys):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "README.txt").write_text("not yaml")
    code, lines = check_config(folder, capsys)
    assert code == 1
    assert lines == [
        f"{folder}: no sources (no .yaml or .yml file in this folder): this config would watch "
        "nothing (set 'allow_empty: true' if meant)",
        f"{folder}: no watchlists (no .yaml or .yml file in this folder): this config would "
        "watch nothing (set 'allow_empty: true' if meant)",
    ]
    (folder / "standby.yaml").write_text("allow_empty: true  # a standby that watches nothing\n")
    code, lines = check_config(folder, capsys)
    assert code == 0 and "0 sources, 0 watchlists" in lines[0]


def test_an_emptied_config_stops_the_service_from_starting(tmp_path):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    run = run_cli(
        "run", "--config", str(cfg), env={"NEWSWATCH_DATA_DIR": str(tmp_path / "data")}, text=True
    )
    assert run.returncode == 1
    assert f"{cfg}:1: no sources: this config would watch nothing" in run.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_match_still_takes_a_watchlists_only_config(tmp_path):
    """Tools that only use the watchlists are not a service: no source needed."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("watchlists:\n  - {name: w, keywords: [troops]}\n")
    run = run_cli("match", "--config", str(cfg), "-", input=b"<p>troops</p>", text=False)
    assert run.returncode == 0, run.stderr


# --- user patterns: RE2 ----------------------------------------------------------------------


HOSTILE_LINKS = """
from worker.sources.feeds import MAX_LINK_CHARS, page_links
from worker.core.patterns import compile_pattern

pattern = compile_pattern("(a+)+$")
print(pattern.search("a" * 50_000 + "!"), pattern.search("https://site.example/aaa"))
base = "https://site.example/"
near_cap = base + "a" * (MAX_LINK_CHARS - 40) + "!"  # under the cap: the pattern runs on it
huge = base + "a" * 50_000 + "!"  # over the cap: skipped unread
html = f'<a href="{near_cap}">x</a><a href="{huge}">y</a><a href="/news/aaa">good</a>'
print(page_links(html, base, "(a+)+$"))
"""


def test_a_catastrophic_pattern_meets_long_hostile_links():
    """`(a+)+$` backtracks exponentially in Python's re, which holds the interpreter lock:
    no thread (nor a signal handler) would run again. In a child process, so that a
    regression fails this test instead of hanging the suite."""
    assert re.compile("(a+)+$")  # Python's re takes the pattern
    assert not isinstance(compile_pattern("(a+)+$"), re.Pattern)
    run = subprocess.run(
        [sys.executable, "-c", HOSTILE_LINKS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,  # a hang guard only
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["False True", "['https://site.example/news/aaa']"]


@pytest.mark.parametrize(
    "source", [r"(\w+)/\1", r"(?P<x>a)(?P=x)", "/articles/(?!tag)", "(?<=/)news", r"a\Z"]
)
def test_what_only_a_backtracking_engine_runs_is_refused(source):
    re.compile(source)  # valid for Python's re
    with pytest.raises(PatternError):
        compile_pattern(source)


def test_page_links_bounds_links_per_page():
    base = "https://site.example/"
    anchors = "".join(f'<a href="/news/{i}">{i}</a>' for i in range(MAX_PAGE_ANCHORS + 100))
    links = page_links(f"<html><body>{anchors}</body></html>", base, r"/news/\d+", limit=10**6)
    assert len(links) == MAX_PAGE_ANCHORS
    assert links[-1] == f"https://site.example/news/{MAX_PAGE_ANCHORS - 1}"


def test_a_refused_pattern_in_page_links_is_a_source_error():
    with pytest.raises(FeedError, match="'follow' pattern refused"):
        page_links('<a href="/x">x</a>', "https://site.example/", r"(a)\1")

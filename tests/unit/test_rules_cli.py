"""Watchlists from the command line: `match --explain` near misses, and bad input.

Bad input must give a clear error with the file and line (`check-config`) or
work, and never take a running worker's rules away: `LiveConfig` keeps the
last good version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker import cli
from worker.bootstrap.config_in_force import LiveConfig
from worker.config import EntitySpec, WatchlistSpec
from worker.config.to_matching import to_watchlists
from worker.core.watchlists import RuleError
from worker.matching.compiler import MAX_TOTAL_CHARS, compile_matcher

SEED_PAGE = Path(__file__).resolve().parents[1] / "data" / "extract" / "seed-article.html"

EXPLAIN_CONFIG = """
watchlists:
  - name: pmf-software
    names:
      - name: Project Management Framework
        weak_aliases: [PMF]
        context: [software]
  - name: militias
    names:
      - name: Popular Mobilization Forces
        aliases: [PMF]
  - name: ameri-no-isis
    names: [Hadi al-Ameri]
    exclude: [Islamic State]
"""


def _write(tmp_path: Path, text: str, name: str = "newswatch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_match_explain_shows_near_misses_with_reasons(tmp_path, capsys):
    config = _write(tmp_path, EXPLAIN_CONFIG)
    assert cli.main(["match", str(SEED_PAGE), "--explain", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    [article] = out["articles"]
    assert [m["watchlist"] for m in article["matches"]] == ["militias"]
    why = {e["watchlist"]: e for e in article["explain"]}
    near = why["pmf-software"]
    assert near["matched"] is False
    assert any(
        r.startswith("weak alias PMF of 'Project Management Framework' without context")
        for r in near["reasons"]
    ), near["reasons"]
    assert why["ameri-no-isis"]["reasons"] == ["excluded by 'Islamic State'"]
    assert why["militias"]["matched"] is True
    assert why["militias"]["reasons"][0].startswith("matched: 'Popular Mobilization Forces'")


# case -> (watchlist "bad" body, expected pieces, line reported: the rule's, the bad
# term's or the key's)
BAD = {
    "unbalanced": (
        "    rule: 'troops AND (Iraq OR Syria'\n",
        ["unbalanced parentheses: '(' is never closed", "    troops AND (Iraq OR Syria", "^"],
        5,
    ),
    "unknown-field": (
        "    rule: 'headline:Iraq AND troops'\n",
        ["unknown field 'headline'", "^"],
        5,
    ),
    "blank-alias": (
        "    names:\n      - name: Hadi al-Ameri\n        aliases: ['']\n",
        ["empty alias"],
        7,
    ),
    "star-inside": ("    keywords: ['with*draw']\n", ["'*' is only allowed at the end"], 5),
}


def _refused(tmp_path, capsys, body: str) -> tuple[Path, str, str]:
    """check-config on a config whose second watchlist `bad` has `body`: (file, text, output)."""
    text = f"watchlists:\n  - name: ok\n    keywords: [Iraq]\n  - name: bad\n{body}"
    config = _write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(config)]) == 1
    return config, text, capsys.readouterr().out


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_config_names_file_line_and_problem(tmp_path, capsys, case):
    body, expected, line = BAD[case]
    config, _, out = _refused(tmp_path, capsys, body)
    assert out.startswith(f"{config}:{line}: "), out
    for piece in expected:
        assert piece in out, out


def test_rule_error_points_at_the_rule_line(tmp_path, capsys):
    text = "watchlists:\n  - name: bad\n    keywords: [troops]\n    rule: 'troops AND (Iraq'\n"
    config = _write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{config}:4: watchlists[bad].rule: watchlist 'bad': unbalanced")
    caret_line = out.splitlines()[2]
    assert caret_line.index("^") == out.splitlines()[1].index("(")


# case -> (watchlist "bad" body, the config item reported, its line)
BAD_TERMS = {
    "keyword": (
        "    keywords:\n      - troops\n      - withdrawal\n      - 'with*draw'\n",
        "keywords[2]",
        8,
    ),
    "exclude": (
        "    keywords: [troops]\n    exclude:\n      - football\n\n      - '!!'\n",
        "exclude[1]",
        9,
    ),
    "entity-name": (
        "    names:\n      - Tillerson\n      - name: '--'\n        aliases: [Ameri]\n",
        "names[--].name",
        7,
    ),
    "entity-shorthand": (
        "    names:\n      - Tillerson\n      - '#'\n",
        "names[#].name",
        7,
    ),
    "alias": (
        "    names:\n      - name: Hadi al-Ameri\n        aliases:\n          - Ameri\n"
        "          - '-'\n",
        "names[Hadi al-Ameri].aliases[1]",
        9,
    ),
    "weak-alias": (
        "    names:\n      - name: Popular Mobilization Forces\n        aliases: [Hashd]\n"
        "        weak_aliases: [PMF, 'P*MF']\n",
        "names[Popular Mobilization Forces].weak_aliases[1]",
        8,
    ),
    "context": (
        "    names:\n      - name: Popular Mobilization Forces\n        weak_aliases: [PMF]\n"
        "        context:\n          - Iraq\n          - militia*\n          - '...'\n",
        "names[Popular Mobilization Forces].context[2]",
        11,
    ),
    "too-long": (
        "    keywords:\n      - troops\n      - " + "x" * 700 + "\n",
        "keywords[1]",
        7,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TERMS))
def test_a_bad_term_is_reported_at_its_own_line(tmp_path, capsys, case):
    body, item, line = BAD_TERMS[case]
    config, text, out = _refused(tmp_path, capsys, body)
    assert out.startswith(f"{config}:{line}: watchlists[bad].{item}: watchlist 'bad': "), out
    assert text.splitlines()[line - 1].strip().startswith(("- ", "context:", "weak_aliases:"))


def test_a_bad_term_in_a_config_folder_is_reported_in_its_file(tmp_path, capsys):
    folder = tmp_path / "config"
    folder.mkdir()
    _write(folder, "watchlists:\n  - name: ok\n    keywords: [Iraq]\n", "a.yaml")
    second = _write(
        folder,
        "sources: []\nwatchlists:\n  - name: bad\n    names:\n      - name: Hadi al-Ameri\n"
        "        aliases:\n          - Ameri\n          - '?'\n",
        "b.yaml",
    )
    assert cli.main(["check-config", "--config", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{second}:8: watchlists[bad].names[Hadi al-Ameri].aliases[1]: "), out
    assert "has no letters or digits" in out


def test_empty_alias_list_works(tmp_path, capsys):
    text = (
        "sources: [{name: s, feed: 'https://example.org/rss'}]\n"  # a config must watch something
        "watchlists:\n  - name: w\n    names:\n      - name: Hadi al-Ameri\n        aliases: []\n"
    )
    assert cli.main(["check-config", "--config", str(_write(tmp_path, text))]) == 0
    assert "ok" in capsys.readouterr().out


def test_ten_megabytes_of_terms_is_refused_quickly_and_clearly():
    terms = tuple(f"term{i:07d} name{i:07d}" for i in range(500_000))  # 10 MB of terms
    assert sum(map(len, terms)) >= 10_000_000
    with pytest.raises(RuleError) as info:
        compile_matcher(to_watchlists([WatchlistSpec(name="huge", keywords=terms)]))
    assert f"more than {MAX_TOTAL_CHARS:,} characters of terms" in str(info.value)
    assert info.value.watchlist == "huge"
    assert info.value.path == ()  # about the watchlist as a whole, not one term


def test_a_large_but_allowed_term_list_works():
    names = tuple(EntitySpec(name=f"Person{i:06d} Surname{i:06d}") for i in range(20_000))
    matcher = compile_matcher(to_watchlists([WatchlistSpec(name="many", names=names)]))
    from worker.core.model import MatchDocument

    [hit] = matcher.match(MatchDocument(title="", body="Person012345 Surname012345 spoke."))
    assert hit.names == ("Person012345 Surname012345",)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_worker_keeps_the_last_good_rules(tmp_path, case, caplog):
    good = (
        "sources: [{name: s, feed: 'https://example.org/rss'}]\n"  # a config must watch something
        "watchlists:\n  - name: ok\n    keywords: [Iraq]\n"
    )
    config = _write(tmp_path, good)
    live = LiveConfig(config, check_seconds=0.0)
    version = live.current().version
    config.write_text(good + f"  - name: bad\n{BAD[case][0]}", encoding="utf-8")
    active = live.current()  # refused, logged, not raised
    assert active.version == version
    assert live.last_error and BAD[case][1][0] in live.last_error
    assert "config change refused" in caplog.text
    from worker.core.model import MatchDocument

    assert [m.watchlist for m in active.matcher.match(MatchDocument(title="Iraq", body=""))] == [
        "ok"
    ]

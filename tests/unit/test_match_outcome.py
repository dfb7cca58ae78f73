"""Matcher.match_outcome: the watchlists turned down, with the reason (the ledger's evidence)."""

from __future__ import annotations

from worker.config import WatchlistSpec
from worker.config.to_matching import to_watchlists
from worker.core.model import MatchDocument
from worker.matching.compiler import compile_matcher
from worker.matching.matcher import Rejection

WATCHLISTS = [
    {"name": "troops", "keywords": ["troops"], "exclude": ["football"]},
    {
        "name": "ameri",
        "names": [{"name": "Hadi al-Ameri"}],
        "rule": '"Hadi al-Ameri" AND NOT ceasefire',
    },
    {"name": "local", "keywords": ["parliament"], "sources": ["local-paper"]},
    {"name": "pmf", "names": [{"name": "Popular Mobilization Forces", "aliases": ["PMF"]}]},
]

MATCHER = compile_matcher(to_watchlists([WatchlistSpec.model_validate(w) for w in WATCHLISTS]))


def doc(body: str, source: str = "wire") -> MatchDocument:
    return MatchDocument(title="", body=body, source=source)


def test_each_turned_down_watchlist_comes_with_the_reason_that_stopped_it():
    d = doc(
        "The troops watched the football final. Hadi al-Ameri announced a ceasefire "
        "as parliament met, and the PMF stayed in barracks."
    )
    outcome = MATCHER.match_outcome(d)
    assert [w.watchlist for w in outcome.matches] == ["pmf"]
    assert outcome.matches == MATCHER.match(d)  # the same answer as match()
    by_name = {r.watchlist: r for r in outcome.rejected}
    assert set(by_name) == {"troops", "ameri", "local"}
    assert by_name["troops"] == Rejection("troops", ("excluded by 'football'",))
    assert by_name["ameri"].reasons == ('rule not satisfied: "Hadi al-Ameri" AND NOT ceasefire',)
    assert "is not one of local-paper" in by_name["local"].reasons[0]


def test_nothing_found_is_no_rejection_and_a_match_is_not_one_either():
    assert MATCHER.match_outcome(doc("Sunny weather all week.")).rejected == []
    assert MATCHER.match_outcome(doc("The troops left.")).rejected == []
    # a context-free optional term alone wakes no watchlist up: no candidate, no rejection
    assert MATCHER.match_outcome(doc("A ceasefire held.")).rejected == []

"""The watchlist matcher, driven by the data corpus in tests/data/rules/*.yaml.

Each case names a watchlist (or several), a document and what must come out:
the hit texts in text order (`expect`), optionally their fields, entities and
offsets, phrases that `explain()` must give, or the RuleError a bad watchlist
must raise. Invariant checked on every hit: its offsets point at its text in
the original field.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import WatchlistSpec
from worker.config.to_matching import to_watchlists
from worker.core.errors import InputError
from worker.core.model import Hit, MatchDocument
from worker.core.watchlists import RuleError
from worker.matching.compiler import compile_matcher
from worker.matching.evaluate import MAX_NEAR_GROUPS
from worker.matching.explain import Explanation
from worker.matching.spelling import MAX_TERM_CHARS

DATA = Path(__file__).parent.parent / "data" / "rules"


def _cases() -> list[Any]:
    params = []
    for path in sorted(DATA.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def _watchlists(case: dict) -> list[WatchlistSpec]:
    raw = case.get("watchlists") or [case["watchlist"]]
    return [WatchlistSpec.model_validate({"name": "w", **w}) for w in raw]


def _document(case: dict) -> MatchDocument:
    if "doc" in case:
        doc = dict(case["doc"])
        for key in ("authors", "tags"):
            if key in doc:
                doc[key] = tuple(doc[key])
        return MatchDocument(**{"title": "", "body": "", **doc})
    return MatchDocument(title="", body=case["text"])


def _field_text(doc: MatchDocument, hit: Hit) -> str:
    return {
        "title": doc.title,
        "lead": doc.lead,
        "body": doc.body,
        "source": doc.source,
        "author": "\n".join(doc.authors),
        "tag": "\n".join(doc.tags),
    }[hit.field]


@pytest.mark.parametrize("case", _cases())
def test_corpus(case: dict) -> None:
    specs = _watchlists(case)
    if "error" in case:
        with pytest.raises(RuleError) as info:
            compile_matcher(to_watchlists(specs))
        assert case["error"] in info.value.message
        assert specs[0].name in str(info.value)
        if "at" in case:
            assert info.value.pos == case["at"]
            caret_line = str(info.value).splitlines()[-1]
            assert caret_line == "    " + " " * case["at"] + "^"
        if "path" in case:
            assert list(info.value.path) == case["path"]
        return
    matcher = compile_matcher(to_watchlists(specs), version="test")
    doc = _document(case)
    matches = {m.watchlist: m for m in matcher.match(doc)}
    expect = case["expect"]
    if isinstance(expect, list):
        expect = {specs[0].name: expect}
    for name, texts in expect.items():
        if not texts:
            assert name not in matches, f"unexpected match: {matches[name].hits}"
            continue
        assert name in matches, f"no match; explain: {matcher.explain(doc)}"
        hits = matches[name].hits
        assert [h.text for h in hits] == texts
        for h in hits:
            assert _field_text(doc, h)[h.start : h.end] == h.text
        if "fields" in case:
            assert sorted({h.field for h in hits}) == sorted(case["fields"])
        if "entities" in case:
            assert [h.entity for h in hits] == case["entities"]
        if "offsets" in case:
            assert [[h.start, h.end] for h in hits] == case["offsets"]
    if "explain" in case:
        explained = {e.watchlist: e for e in matcher.explain(doc)}
        reasons = " | ".join(explained[specs[0].name].reasons)
        for phrase in case["explain"]:
            assert phrase in reasons


SEED = (
    "A senior commander for the Iran-backed Popular Mobilization Forces (PMF) operating "
    "in Iraq, also known as Hashd al-Sha’abi, demanded American military forces leave. "
    "Hadi Al-Ameri said he would demand the U.S. pull out all its troops."
)


def _pmf() -> WatchlistSpec:
    return WatchlistSpec.model_validate(
        {
            "name": "iraq-militias",
            "names": [
                {
                    "name": "Popular Mobilization Forces",
                    "aliases": ["PMF", "Hashd al-Sha'abi"],
                }
            ],
            "rule": '"Popular Mobilization Forces" AND (troops OR withdraw*)',
        }
    )


def test_snippet_and_highlights_point_at_the_hits() -> None:
    matcher = compile_matcher(to_watchlists([_pmf()]), version="v7")
    assert matcher.version == "v7"
    [match] = matcher.match(MatchDocument(title="t", body=SEED))
    assert match.watchlist == "iraq-militias"
    assert match.names == ("Popular Mobilization Forces", "troops")
    highlighted = [match.snippet[a:b] for a, b in match.highlights]
    assert highlighted[:3] == ["Popular Mobilization Forces", "PMF", "Hashd al-Sha’abi"]
    assert "troops" in highlighted
    assert "\n" not in match.snippet


def test_snippet_is_cut_at_words_with_ellipses() -> None:
    body = ("word " * 100) + "Tillerson said " + ("more " * 100)
    [match] = compile_matcher(to_watchlists([WatchlistSpec(name="t", names=["Tillerson"])])).match(
        MatchDocument(title="", body=body)
    )
    assert match.snippet.startswith("…word")
    assert match.snippet.endswith("more…")
    [(a, b)] = match.highlights
    assert match.snippet[a:b] == "Tillerson"


def test_explain_lists_near_misses_and_skips_unrelated_watchlists() -> None:
    specs = [
        _pmf(),
        WatchlistSpec(name="sport", keywords=["football"]),
        WatchlistSpec(name="tillerson", names=["Tillerson"]),
    ]
    doc = MatchDocument(title="", body="The PMF said nothing about it")
    explained = compile_matcher(to_watchlists(specs)).explain(doc)
    assert [e.watchlist for e in explained] == ["iraq-militias"]
    [e] = explained
    assert isinstance(e, Explanation)
    assert not e.matched
    assert e.reasons == ["rule needs troops OR withdraw*: not found"]
    assert [h.text for h in e.hits] == ["PMF"]


def test_all_watchlists_in_one_matcher_keep_config_order() -> None:
    specs = [WatchlistSpec(name=f"w{i}", keywords=[f"term{i}", "shared"]) for i in range(50)]
    matcher = compile_matcher(to_watchlists(specs))
    assert matcher.watchlists == tuple(s.name for s in specs)
    found = matcher.match(MatchDocument(title="", body="term7 and term3 and shared"))
    assert [m.watchlist for m in found] == [s.name for s in specs]
    assert [h.text for h in found[3].hits] == ["term3", "shared"]


def test_no_watchlists_and_empty_documents() -> None:
    assert compile_matcher(to_watchlists([])).match(MatchDocument(title="", body="anything")) == []
    matcher = compile_matcher(to_watchlists([_pmf()]))
    assert matcher.match(MatchDocument(title="", body="")) == []
    assert matcher.explain(MatchDocument(title="", body="")) == []


def test_a_huge_term_is_refused_with_a_clear_error() -> None:
    spec = WatchlistSpec(name="huge", keywords=["x" * 10_000_000])
    with pytest.raises(RuleError, match=f"longer than {MAX_TERM_CHARS}"):
        compile_matcher(to_watchlists([spec]))


def test_a_10_mb_term_list_is_refused_with_a_clear_error() -> None:
    terms = [f"term{i:07d}" for i in range(1_000_000)]  # ~11 MB of terms
    spec = WatchlistSpec.model_construct(
        name="huge",
        names=(),
        keywords=tuple(terms),
        rule=None,
        exclude=(),
        sources=(),
        exclude_sources=(),
        min_mentions=1,
        fold_diacritics=True,
        exact_case_acronyms=True,
        notify=(),
    )
    with pytest.raises(RuleError, match="characters of terms"):
        compile_matcher(to_watchlists([spec]))


def test_a_large_term_list_works() -> None:
    terms = [f"name{i} surname{i % 977}" for i in range(20_000)]
    matcher = compile_matcher(to_watchlists([WatchlistSpec(name="big", keywords=terms)]))
    [match] = matcher.match(MatchDocument(title="", body="said NAME19999 Surname459 today"))
    assert [h.term for h in match.hits] == ["name19999 surname459"]


def test_one_matcher_shared_by_threads() -> None:
    matcher = compile_matcher(to_watchlists([_pmf(), WatchlistSpec(name="us", keywords=["US"])]))
    docs = [MatchDocument(title="", body=SEED), MatchDocument(title="", body="us and them")]
    expected = [[m.hits for m in matcher.match(d)] for d in docs]
    failures: list[str] = []

    def work() -> None:
        for _ in range(200):
            for doc, want in zip(docs, expected, strict=True):
                if [m.hits for m in matcher.match(doc)] != want:
                    failures.append("different result")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_rule_error_shows_watchlist_rule_and_caret() -> None:
    spec = WatchlistSpec(name="bad", rule="troops AND (Iraq OR Syria")
    with pytest.raises(RuleError) as info:
        compile_matcher(to_watchlists([spec]))
    assert str(info.value).splitlines() == [
        "watchlist 'bad': unbalanced parentheses: '(' is never closed",
        "    troops AND (Iraq OR Syria",
        "               ^",
    ]


def test_explain_agrees_with_match_when_a_weak_alias_lacks_context():
    """A weak alias without context is a note, not a veto: another term still matches."""
    spec = WatchlistSpec(
        name="pmf",
        names=[
            {"name": "Popular Mobilization Forces", "weak_aliases": ["PMF"], "context": ["Iraq"]}
        ],
        keywords=["withdraw*"],
    )
    matcher = compile_matcher(to_watchlists([spec]))
    doc = MatchDocument(title="", body="The PMF said it would withdraw its units.")
    assert [m.watchlist for m in matcher.match(doc)] == ["pmf"]
    (why,) = matcher.explain(doc)
    assert why.matched
    assert any(r.startswith("weak alias PMF") for r in why.reasons)


def test_near_hits_are_the_close_pair_in_match_explain_and_snippet():
    spec = WatchlistSpec(name="near", rule="Tillerson NEAR/3 Iran")
    body = (
        "Tillerson opened the session. "
        + "word " * 60
        + "Later Tillerson warned Iran directly. "
        + "word " * 60
        + "Iran did not answer."
    )
    matcher = compile_matcher(to_watchlists([spec]))
    doc = MatchDocument(title="", body=body)
    [match] = matcher.match(doc)
    [why] = matcher.explain(doc)
    assert why.matched
    assert why.hits == match.hits
    pair = body.index("Tillerson warned Iran")
    assert [(h.text, h.start) for h in match.hits] == [("Tillerson", pair), ("Iran", pair + 17)]
    assert [match.snippet[a:b] for a, b in match.highlights] == ["Tillerson", "Iran"]
    assert "Later Tillerson warned Iran" in match.snippet


def test_explain_shows_where_the_terms_of_a_near_miss_are():
    spec = WatchlistSpec(name="near", rule="Tillerson NEAR/3 Iran AND NOT football")
    body = "Tillerson opened the session. " + "word " * 10 + "Iran did not answer."
    matcher = compile_matcher(to_watchlists([spec]))
    doc = MatchDocument(title="", body=body)
    assert matcher.match(doc) == []
    [why] = matcher.explain(doc)
    assert not why.matched
    assert any("not within 3 words" in r for r in why.reasons), why.reasons
    assert [(h.text, h.start) for h in why.hits] == [("Tillerson", 0), ("Iran", body.index("Iran"))]


def test_a_long_page_full_of_hits_keeps_every_hit_in_place():
    """1 MB, 20,000 repeats: every hit found and placed (offsets are counted on from the
    last hit; NEAR looks at a window: both were quadratic, minutes on such a page)."""
    sentence = "Tillerson said “things” about Iran, and more words here. "
    matcher = compile_matcher(
        to_watchlists(
            [
                WatchlistSpec(name="kw", keywords=("Tillerson",)),
                WatchlistSpec(name="near", rule="Tillerson NEAR/5 Iran"),
            ]
        )
    )
    body = sentence * 20000
    kw, near = matcher.match(MatchDocument(title="", body=body))
    assert len(kw.hits) == 20000
    assert kw.hits[-1].start == len(body) - len(sentence)
    # each Iran is close to the Tillerson before it and the one after it: 2 groups each,
    # so 4,000 repeats stay under the bound on groups and every occurrence is a hit
    body = sentence * 4000
    [kw, near] = matcher.match(MatchDocument(title="", body=body))
    assert len(near.hits) == 8000
    last = near.hits[-1]
    assert (last.text, last.start) == ("Iran", len(body) - len(sentence) + sentence.index("Iran"))
    assert all(body[h.start : h.end] == h.text for h in near.hits)


def test_near_on_one_endless_clause_keeps_a_bounded_number_of_groups():
    """Chinese without punctuation is one "word": every pair is close. The NEAR holds and
    keeps its first groups instead of all 400 million."""
    body = "外交部发言人" * 20000
    matcher = compile_matcher(to_watchlists([WatchlistSpec(name="n", rule="外交部 NEAR/3 发言人")]))
    [match] = matcher.match(MatchDocument(title="", body=body))
    assert 2 <= len(match.hits) <= 2 * MAX_NEAR_GROUPS + 1
    assert match.hits[0].text == "外交部" and match.hits[0].start == 0


def test_rule_error_is_a_permanent_input_error() -> None:
    """A bad rule is the person's input: not retried, counted as kind "rule"."""
    with pytest.raises(InputError) as info:
        compile_matcher(to_watchlists([WatchlistSpec(name="bad", rule="Iran AND")]))
    assert isinstance(info.value, RuleError) and isinstance(info.value, ValueError)
    assert info.value.kind == "rule"
    assert info.value.permanent
    assert info.value.path == ("rule",)

"""The robots.txt verdicts a process keeps: bounded, least recently used forgotten
first, and each origin's robots.txt read once while it is kept."""

from __future__ import annotations

import pytest

from worker.http.deadline import Deadline
from worker.http.errors import FetchError
from worker.http.robots import RobotsRules


class Loader:
    """robots.txt bodies by origin; counts the fetches. An origin absent: 404."""

    def __init__(self, bodies: dict[str, bytes] | None = None) -> None:
        self.bodies = bodies or {}
        self.fetched: list[str] = []

    def __call__(self, url: str, deadline: Deadline) -> bytes:
        self.fetched.append(url)
        site = url.removesuffix("/robots.txt")
        if site not in self.bodies:
            raise FetchError("http_404", f"{url}: 404", url=url, status=404)
        return self.bodies[site]


def check(rules: RobotsRules, url: str, load: Loader) -> float:
    return rules.check(url, "newswatch/1.0", Deadline(5), load)


def test_each_origin_is_read_once_while_kept() -> None:
    load = Loader()
    rules = RobotsRules(ttl=3600, error_ttl=60)
    for _ in range(3):
        for n in range(50):
            check(rules, f"http://site{n}.test/feed", load)
    assert len(load.fetched) == 50


def test_the_least_recently_used_origin_is_forgotten_first() -> None:
    load = Loader()
    rules = RobotsRules(ttl=3600, error_ttl=60, max_origins=3)
    for name in ("a", "b", "c"):
        check(rules, f"http://{name}.test/", load)
    check(rules, "http://a.test/", load)  # a used again: b is now the oldest
    check(rules, "http://d.test/", load)
    assert list(rules.entries) == ["http://c.test", "http://a.test", "http://d.test"]
    load.fetched.clear()
    check(rules, "http://a.test/x", load)
    check(rules, "http://b.test/x", load)  # forgotten: read again
    assert load.fetched == ["http://b.test/robots.txt"]
    assert len(rules.entries) == 3


def test_many_origins_stay_within_the_bound() -> None:
    load = Loader()
    rules = RobotsRules(ttl=3600, error_ttl=60, max_origins=1000)
    for n in range(5000):
        check(rules, f"http://site{n}.test/", load)
    assert len(rules.entries) == 1000
    assert "http://site4999.test" in rules.entries
    assert "http://site3999.test" not in rules.entries


def test_shared_parsers_keep_each_origin_s_own_rules() -> None:
    load = Loader(
        {
            "http://strict.test": b"User-agent: *\nDisallow: /\n",
            "http://slow.test": b"User-agent: *\nCrawl-delay: 7\n",
        }
    )
    rules = RobotsRules(ttl=3600, error_ttl=60)
    assert check(rules, "http://open.test/a", load) == 0.0
    assert check(rules, "http://open2.test/b", load) == 0.0
    assert check(rules, "http://slow.test/a", load) == 7.0
    with pytest.raises(FetchError) as refused:
        check(rules, "http://strict.test/a", load)
    assert refused.value.kind == "robots_disallow"
    assert check(rules, "http://open.test/c", load) == 0.0

"""Per-host limits and the robots.txt cache shared through Redis, by real separate
fetcher processes against one site on 127.0.0.1, with the test's own redis-server.

The spacing assertion reads the times the *server* recorded. Its tolerance is
generous on purpose (TOLERANCE): a turn is reserved in Redis by the process that
takes it, and the request then still has to pass that process's scheduling and its
connection set-up on a shared two-core machine, where one request can be held back a
few hundred milliseconds while the next is on time. Without shared limits the three
processes collide within milliseconds, far below the bound, so the test still fails
when the limits are per process.

The `late` cases make that delay deterministic: a test hook (`before_send`) holds a
request back for LATE seconds between its turn and its send, as a scheduler under load
can. With turns alone the late request then lands LIMIT - LATE = 0.05 s before the next
turn's, far under the bound; the confirmation of each send against the host's last
send keeps them apart.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import redis

from tests.helpers import httpserver, netsafety
from tests.helpers.httpserver import Answer, RecordedRequest, TestServer
from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.http.deadline import Deadline
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher
from worker.http.host_limits import HostLimiter
from worker.http.robots import RobotsRules
from worker.http.shared_limits import (
    LeaseRenewer,
    SharedHostLimiter,
    SharedRedis,
    SharedRobotsStore,
    renewer,
)

http_server = httpserver.http_server
fake_dns = netsafety.fake_dns

pytestmark = pytest.mark.redis

LIMIT = 1.0  # seconds between two requests to the site: one request per second
TOLERANCE = 0.8  # see the module's docstring
LATE = 0.95  # seconds a held-back request sends after its turn (see the docstring)
PROCESSES = 3
PAGES_EACH = 3
ROOT = Path(__file__).parents[2]
TTL = 3.0  # the lease TTL of the lease tests, short to keep them short (LEASE_TTL is 10 s)
SITE = "http://example.org"


def _timed(times: list[float], lock: threading.Lock, body: bytes) -> Callable[..., Answer]:
    def answer(_request: RecordedRequest) -> Answer:
        with lock:
            times.append(time.monotonic())
        return 200, {"Content-Type": "text/plain"}, body

    return answer


@pytest.mark.parametrize("late", [0.0, LATE], ids=["on-time", "one-process-late"])
def test_three_fetcher_processes_keep_one_site_at_one_request_per_second(
    tmp_path: Path, http_server: TestServer, redis_url: str, late: float
) -> None:
    times: list[float] = []
    lock = threading.Lock()
    http_server.routes["/robots.txt"] = _timed(times, lock, b"User-agent: *\nAllow: /\n")
    pages = [f"/p/{i}" for i in range(PROCESSES * PAGES_EACH)]
    for path in pages:
        http_server.routes[path] = _timed(times, lock, b"page")
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.polite_fetcher",
                redis_url,
                str(LIMIT),
                str(start),
                *(http_server.url(p) for p in pages[i::PROCESSES]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=_late_env(late if i == 0 else 0.0),
        )
        for i in range(PROCESSES)
    ]
    try:
        for p in procs:  # every process imported and built its fetcher
            assert p.stdout is not None and json.loads(p.stdout.readline()) == {"ready": True}
        start.touch()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    outcomes = [json.loads(line)["outcome"] for out in outputs for line in out.splitlines()]
    assert outcomes == [200] * len(pages)
    # robots.txt once per cache period for all three processes, not once per process
    assert http_server.hits("/robots.txt") == 1
    assert len(times) == len(pages) + 1
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= LIMIT - TOLERANCE, gaps


def _late_env(late: float) -> dict[str, str]:
    """The first process sends every request after its first one `late`. A slot per
    process then, so that no process waits for a slot and the turns go round: every
    late request has another process's on-time turn right after it."""
    if not late:
        return dict(os.environ)
    return {**os.environ, "POLITE_FETCHER_LATE": str(late), "POLITE_FETCHER_MAX": str(PROCESSES)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_falls_back_to_the_process_limits_with_a_warning(
    http_server: TestServer, fake_dns: netsafety.FakeDNS, caplog: pytest.LogCaptureFixture
) -> None:
    http_server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n")
    url = http_server.add("/page", b"page")
    spec = FetchSpec(deadline=10.0, allow_networks=("127.0.0.0/8",))  # type: ignore[call-arg]
    nothing_there = f"redis://127.0.0.1:{_free_port()}/0"
    with (
        caplog.at_level(logging.WARNING, logger="worker.http.shared_limits"),
        Fetcher(fetch_options(spec), respect_robots=True, shared_url=nothing_there) as f,
    ):
        assert f.get(url).status == 200
        assert f.get(url).status == 200
        # robots.txt still holds, from this process's cache
        with pytest.raises(FetchError) as err:
            f.get(http_server.url("/private/x"))
    assert err.value.kind == "robots_disallow"
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per request
    assert http_server.hits("/robots.txt") == 1


def test_a_slot_its_holder_never_gave_back_expires(redis_url: str) -> None:
    """A lease nobody renews (its process is gone) runs out after the lease TTL, then
    the slot is free again."""
    shared = SharedRedis(redis_url, lease_ttl=TTL)
    limiter = SharedHostLimiter(shared, max_concurrent=1, min_interval=0.0)
    # taken and never released nor renewed, as by a process killed mid-fetch
    assert limiter._acquire("example.org", "dead-process", 0.0, Deadline(60.0))
    ttl_ms = redis.Redis.from_url(redis_url).pttl("newswatch:polite:slots:example.org")
    assert 0 < ttl_ms <= (TTL + 1.0) * 1000  # the lease expires on its own
    # a short wait: the slot is still held, so this one gives up
    with pytest.raises(FetchError) as err, limiter.slot("example.org", Deadline(0.2)):
        pass
    assert err.value.kind == "timeout" and "free slot" in err.value.message
    # long enough for the lease to run out, far shorter than the 60 s deadline it had
    with limiter.slot("example.org", Deadline(3 * TTL)):
        members = redis.Redis.from_url(redis_url).zrange(
            "newswatch:polite:slots:example.org", 0, -1
        )
        assert members and b"dead-process" not in members
    shared.close()


def _holder(redis_url: str) -> subprocess.Popen[str]:
    """A process holding both slots of example.org and the robots.txt lock of SITE."""
    args = [redis_url, str(TTL), "example.org", "2", SITE]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.lease_holder", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and json.loads(proc.stdout.readline()) == {"held": True}
    return proc


def _wait_for_lock(store: SharedRobotsStore, deadline: Deadline) -> str | None:
    while not deadline.expired:
        token = store.lock(SITE)
        if token is not None:
            return token
        time.sleep(0.05)
    return None


def test_a_holder_killed_mid_fetch_frees_its_slots_and_robots_lock_within_the_lease(
    redis_url: str,
) -> None:
    """SIGKILL (as the OOM killer) in the middle of two fetches and a robots.txt fetch
    with a 60 s deadline: nobody renews the leases any more, so another process gets
    the slots and the lock a few lease TTLs later, not after the deadline."""
    shared = SharedRedis(redis_url, lease_ttl=TTL)
    limiter = SharedHostLimiter(shared, max_concurrent=2, min_interval=0.0)
    store = SharedRobotsStore(shared)
    proc = _holder(redis_url)
    try:
        with pytest.raises(FetchError), limiter.slot("example.org", Deadline(0.2)):
            pass  # both slots are taken
        assert store.lock(SITE) is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with (
            limiter.slot("example.org", Deadline(3 * TTL)),
            limiter.slot("example.org", Deadline(3 * TTL)),
        ):
            pass
        token = _wait_for_lock(store, Deadline(3 * TTL))
        assert token is not None
        store.unlock(SITE, token)
    finally:
        proc.kill()
    shared.close()


def test_a_live_fetch_longer_than_the_lease_keeps_its_slots_and_robots_lock(
    redis_url: str,
) -> None:
    """A holder that is alive renews its leases: for three lease TTLs another process
    can take neither a third slot (max 2 per host) nor the robots.txt lock; once the
    holder gives them back, it can."""
    shared = SharedRedis(redis_url, lease_ttl=TTL)
    limiter = SharedHostLimiter(shared, max_concurrent=2, min_interval=0.0)
    store = SharedRobotsStore(shared)
    proc = _holder(redis_url)
    try:
        with pytest.raises(FetchError) as err, limiter.slot("example.org", Deadline(3 * TTL)):
            pass
        assert "free slot" in err.value.message
        assert store.lock(SITE) is None
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("release\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"released": True}
        with limiter.slot("example.org", Deadline(5.0)), limiter.slot("example.org", Deadline(5.0)):
            token = store.lock(SITE)
            assert token is not None
            store.unlock(SITE, token)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    shared.close()


def _forked_holder(redis_url: str, conn: Connection) -> None:
    """In a child forked from a process whose renewer thread runs: hold the one slot."""
    limiter = SharedHostLimiter(SharedRedis(redis_url, lease_ttl=TTL), 1, 0.0)
    with limiter.slot("example.org", Deadline(60.0)):
        conn.send(renewer().pid == os.getpid())
        conn.recv()  # until told to give it back


def test_a_forked_child_renews_its_leases_with_a_thread_of_its_own(redis_url: str) -> None:
    """Celery's prefork pool forks after the parent may have fetched: the child inherits
    no thread, so it must start its own renewer, or its slot would lapse mid-fetch."""
    limiter = SharedHostLimiter(SharedRedis(redis_url, lease_ttl=TTL), 1, 0.0)
    with limiter.slot("example.org", Deadline(5.0)):  # this process's renewer runs
        pass
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_forked_holder, args=(redis_url, child_end)
    )
    child.start()
    try:
        assert parent_end.poll(30) and parent_end.recv() is True  # a renewer of its own
        with pytest.raises(FetchError) as err, limiter.slot("example.org", Deadline(3 * TTL)):
            pass  # the child's slot outlives three lease TTLs
        assert "free slot" in err.value.message
        parent_end.send("release")
        child.join(timeout=30)
        assert child.exitcode == 0
        with limiter.slot("example.org", Deadline(5.0)):
            pass
    finally:
        child.kill()
    limiter.shared.close()


def test_a_crawl_delay_holds_for_every_fetcher_on_the_redis(
    http_server: TestServer, fake_dns: netsafety.FakeDNS, redis_url: str
) -> None:
    """Two fetchers (each with its own in-process limiter, as two processes have) and no
    min_interval of their own: the robots.txt Crawl-delay one of them read spaces the
    requests of both."""
    times: list[float] = []
    lock = threading.Lock()
    http_server.add("/robots.txt", "User-agent: *\nCrawl-delay: 1\n")
    pages = [f"/q/{i}" for i in range(6)]
    for path in pages:
        http_server.routes[path] = _timed(times, lock, b"page")
    spec = FetchSpec(deadline=30.0, allow_networks=("127.0.0.0/8",))  # type: ignore[call-arg]
    fetchers = [
        Fetcher(fetch_options(spec), respect_robots=True, min_interval=0.0, shared_url=redis_url)
        for _ in range(2)
    ]
    statuses: list[int] = []

    def crawl(fetcher: Fetcher, paths: list[str]) -> None:
        statuses.extend(fetcher.get(http_server.url(p)).status for p in paths)

    threads = [
        threading.Thread(target=crawl, args=(f, pages[i::2])) for i, f in enumerate(fetchers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for f in fetchers:
        f.close()
    assert statuses == [200] * len(pages)
    assert http_server.hits("/robots.txt") == 1
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= LIMIT - TOLERANCE, gaps


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_threads_of_one_process_send_a_limit_apart_when_some_send_late(
    request: pytest.FixtureRequest,
    http_server: TestServer,
    fake_dns: netsafety.FakeDNS,
    shared: bool,
) -> None:
    """Eight threads of one fetcher, every other one held back between its turn and its
    send: each request still reaches the server a limit after the one before."""
    times: list[float] = []
    lock = threading.Lock()
    pages = [f"/t/{i}" for i in range(8)]
    for path in pages:
        http_server.routes[path] = _timed(times, lock, b"page")
    spec = FetchSpec(deadline=60.0, allow_networks=("127.0.0.0/8",))  # type: ignore[call-arg]
    shared_url = request.getfixturevalue("redis_url") if shared else None
    fetcher = Fetcher(fetch_options(spec), min_interval=LIMIT, shared_url=shared_url)
    calls = itertools.count()

    def late_every_other(_host: str) -> None:
        if next(calls) % 2 == 0:
            time.sleep(LATE)

    fetcher._limiter.before_send = late_every_other
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda p=p: statuses.append(fetcher.get(http_server.url(p)).status))
        for p in pages
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    fetcher.close()
    assert statuses == [200] * len(pages)
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= LIMIT - TOLERANCE, gaps


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_send_that_could_only_go_after_the_deadline_fails_at_once(
    request: pytest.FixtureRequest, shared: bool
) -> None:
    """The turn is free but the host's last send was just now: a request whose deadline
    ends before the interval has passed fails with the deadline error, and takes
    nothing, so the next one may go an interval after the first send."""
    limiter: SharedHostLimiter | HostLimiter = HostLimiter(2, LIMIT)
    if shared:
        limiter = SharedHostLimiter(SharedRedis(request.getfixturevalue("redis_url")), 2, LIMIT)

    def send(deadline: Deadline) -> None:
        if isinstance(limiter, SharedHostLimiter):
            limiter._confirm("example.org", LIMIT, deadline)
        else:
            limiter.confirm_send("example.org", deadline, LIMIT)

    send(Deadline(5.0))  # the first send goes at once
    with pytest.raises(FetchError) as err:
        send(Deadline(0.1))
    assert err.value.kind == "timeout" and "past the deadline" in err.value.message
    send(Deadline(5.0))  # waits out the interval, then goes


def test_the_send_confirmation_falls_back_to_the_process_while_redis_is_down() -> None:
    shared = SharedRedis(f"redis://127.0.0.1:{_free_port()}/0")
    limiter = SharedHostLimiter(shared, 2, LIMIT)
    limiter._confirm("example.org", LIMIT, Deadline(5.0))  # Redis fails: the local record
    assert not shared.available
    with pytest.raises(FetchError) as err:  # which holds the next send back
        limiter._confirm("example.org", LIMIT, Deadline(0.1))
    assert "past the deadline" in err.value.message
    shared.close()


class _RenewerWithoutThread(LeaseRenewer):
    def _start_thread(self) -> threading.Thread:
        return threading.current_thread()


def test_renewing_while_redis_is_unreachable_warns_once_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = SharedRedis(f"redis://127.0.0.1:{_free_port()}/0", lease_ttl=TTL)
    # the rounds this test runs itself, and no thread of its own: the process's renewer
    # thread would go on renewing (and logging) into the next tests
    leases = _RenewerWithoutThread()
    with (
        caplog.at_level(logging.WARNING, logger="worker.http.shared_limits"),
        leases.held(shared, "newswatch:polite:slots:example.org", "a-token", slot=True),
    ):
        leases.renew()
        leases.renew()  # no exception: the next round simply tries again
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert not shared.available  # new fetches take the process's limits meanwhile
    shared.close()


class _FinishesBeforeOurLock(SharedRobotsStore):
    """Another process stores its verdict and lets go of the lock between our look
    (nothing stored) and our lock (free again): the race of a lock taken just late."""

    def lock(self, site: str) -> str | None:
        if self.get(site) is None:
            self.put(site, {"verdict": "rules", "body": "User-agent: *\nDisallow: /no\n"}, 60)
        return super().lock(site)


def test_a_verdict_stored_just_before_our_lock_is_used_not_fetched_again(
    redis_url: str,
) -> None:
    shared = SharedRedis(redis_url, lease_ttl=TTL)
    store = _FinishesBeforeOurLock(shared)
    site = f"http://race-{os.getpid()}-{time.monotonic_ns()}.test"
    fetched: list[str] = []

    def load(url: str, deadline: Deadline) -> bytes:
        fetched.append(url)
        return b"User-agent: *\nAllow: /\n"

    rules = RobotsRules(ttl=60, error_ttl=60, shared=store)
    assert rules.check(f"{site}/yes", "newswatch/1.0", Deadline(5), load) == 0.0
    with pytest.raises(FetchError) as refused:
        rules.check(f"{site}/no", "newswatch/1.0", Deadline(5), load)
    assert refused.value.kind == "robots_disallow"  # the other process's verdict
    assert fetched == []
    token = store.lock(site)
    assert token is not None  # and the lock was let go
    store.unlock(site, token)
    shared.close()


def test_more_fetch_threads_than_redis_py_s_default_pool_keep_the_shared_limits(
    redis_url: str,
) -> None:
    """150 threads in a Redis call at once (a worker's 16 threads x a batch's 8 are 128):
    each waits for a connection if it must, none is refused with "Too many connections",
    which read as Redis being down and put the limits on the process for 30 s."""
    shared = SharedRedis(redis_url)
    key = f"nw-test-empty-{os.getpid()}-{time.monotonic_ns()}"
    answers: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(150)

    def one() -> None:
        start.wait()
        # a call that holds its connection for a while, as a slow round trip would
        got = shared.call(lambda c: c.blpop([key], timeout=0.3), lambda: "fallback")
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=one) for _ in range(150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == [None] * 150  # BLPOP timed out on every thread: no fallback
    assert shared.available
    shared.close()

"""Politeness shared through Redis: per-host concurrency and spacing, and the robots.txt
cache, held for every fetcher process on the same Redis (the broker's).

- A request takes a slot and a turn in one Lua script (atomic): per host a sorted set
  of leases (token -> expiry) is the concurrency semaphore, and a "next free" key the
  spacing. Times are the Redis server's (`TIME`), so workers on several hosts need no
  synchronised clocks. A lease is short (`LEASE_TTL`) and renewed while its fetch runs
  by one thread per process (`LeaseRenewer`), so a killed process's slots end soon.
- When its turn has come, a request confirms its send against the host's "last sent"
  time (see host_limits: turns space the plan, this spaces the sends), and waits the
  difference if it is early. A turn that is free at once is confirmed in the same script
  call as the slot (the common case: one round trip to take a slot, one to give it
  back); a turn waited for is confirmed by a second script once it has come.
- robots.txt verdicts are stored per origin for their cache period; a lock (a lease
  like a slot, renewed the same way) lets one process fetch a robots.txt while the
  others wait for its verdict.
- Redis unreachable: the in-process limits and cache take over with a logged warning
  (checked again after `RETRY_AFTER` seconds); a fetch never fails because of Redis.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from worker.http.deadline import Deadline
from worker.http.host_limits import MAX_SPACING, HostLimiter, no_free_slot, past_deadline

log = logging.getLogger(__name__)

PREFIX = "newswatch:polite:"
RETRY_AFTER = 30.0  # seconds on the in-process limits after Redis failed
# Seconds a slot or robots.txt lock lasts unless its holder renews it. Short, so that a
# process killed mid-fetch (SIGKILL, OOM) blocks the host's other fetchers about this
# long, not for the fetch's whole deadline; long beside the renewal period (a third of
# it), so that a busy process's renewer running a few seconds late does not lose a
# live fetch's slot.
LEASE_TTL = 10.0
_POLL_MAX = 0.2  # seconds between two tries for a full host's slot
MAX_CONNECTIONS = 1024  # to Redis per process, opened as needed (SharedRedis)

# KEYS: leases (zset), next free turn (ms), last send (ms). ARGV: token, max, interval ms,
# remaining ms, lease ms, confirm (1: confirm a turn free at once, as _CONFIRM does),
# lease ms of the last send. Returns {2, 0} (slot and turn taken, send confirmed: send
# now), {1, wait ms} (slot and turn taken; confirm the send when the turn has come),
# {0, ms until a lease may end} (host full), {-1, wait ms} (turn past the deadline;
# nothing taken). next_turn() and send_wait() in host_limits are the same arithmetic.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) - now}
end
local interval = tonumber(ARGV[3])
local wait = 0
if interval > 0 then
  local start = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
  wait = start - now
  if wait > tonumber(ARGV[4]) then return {-1, wait} end
  redis.call('SET', KEYS[2], start + interval, 'PX', wait + interval + 1000)
end
local lease = tonumber(ARGV[5]) + wait
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease + 1000 then
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
end
if wait > 0 or interval <= 0 or ARGV[6] ~= '1' then return {1, wait} end
local last = redis.call('GET', KEYS[3])
if last and tonumber(last) + interval > now then return {1, 0} end
redis.call('SET', KEYS[3], now, 'PX', ARGV[7])
return {2, 0}
"""

# KEYS: the host's last send (ms). ARGV: interval ms, lease ms of the key. Returns
# {1, 0} (send now; now is the last send) or {0, wait ms}. send_wait() in host_limits
# is the same arithmetic.
_CONFIRM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('GET', KEYS[1])
if last then
  local wait = tonumber(last) + tonumber(ARGV[1]) - now
  if wait > 0 then return {0, wait} end
end
redis.call('SET', KEYS[1], now, 'PX', ARGV[2])
return {1, 0}
"""

# KEYS: a lock. ARGV: the holder's token. Deletes the lock only if it is still theirs.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: n slot sets, then lock keys. ARGV: lease ms, n, then one token per key. Extends
# each lease still live (never revives a lapsed one, which another request may have
# counted as free) to now + lease, and its key's expiry with it.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local token = ARGV[i + 2]
  if i <= n then
    local score = redis.call('ZSCORE', key, token)
    if score and tonumber(score) > now then
      redis.call('ZADD', key, 'XX', math.max(tonumber(score), now + lease), token)
      if redis.call('PTTL', key) < lease + 1000 then
        redis.call('PEXPIRE', key, lease + 1000)
      end
    end
  elseif redis.call('GET', key) == token then
    redis.call('PEXPIRE', key, lease)
  end
end
return 0
"""

T = TypeVar("T")


class SharedRedis:
    """The Redis client of the shared limits (`url` as redis-py reads it), and the
    fallback switch: `call` runs an
    operation on Redis, or the fallback while Redis is failing."""

    def __init__(self, url: str, lease_ttl: float = LEASE_TTL) -> None:
        # every fetch thread of the process (a worker's threads x a batch's) may be in a
        # call at once: redis-py's default pool raises "Too many connections" past 100,
        # which read as Redis being down and dropped the shared limits for 30 s; this one
        # waits for a free connection instead, and holds more than the threads can use
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=2.0,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
        )
        self.client = redis.Redis(connection_pool=pool)
        self.lease_ttl = lease_ttl  # a parameter for the tests, which cannot wait 10 s
        self.acquire_script = self.client.register_script(_ACQUIRE)
        self.unlock_script = self.client.register_script(_UNLOCK)
        self.confirm_script = self.client.register_script(_CONFIRM)
        self.renew_script = self.client.register_script(_RENEW)
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def call(self, op: Callable[[redis.Redis], T], fallback: Callable[[], T]) -> T:
        if not self.available:
            return fallback()
        try:
            return op(self.client)
        except redis.RedisError as exc:
            self.failed(exc)
            return fallback()

    def failed(self, exc: Exception) -> None:
        with self._lock:
            first = self.available
            self._down_until = time.monotonic() + RETRY_AFTER
        if first:
            log.warning(
                "politeness: Redis unreachable (%s); per-host limits and robots.txt are "
                "per process for the next %.0f s",
                exc,
                RETRY_AFTER,
            )

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()  # ours: close() leaves a given pool open


class SharedHostLimiter:
    """`HostLimiter`'s contract with the limits in Redis; `local` while Redis fails."""

    def __init__(self, shared: SharedRedis, max_concurrent: int, min_interval: float) -> None:
        self.shared = shared
        self.max_concurrent = max_concurrent
        self.min_interval = min_interval
        self.local = HostLimiter(max_concurrent, min_interval)

    @property
    def before_send(self) -> Callable[[str], None] | None:
        return self.local.before_send  # one test hook for both paths (see HostLimiter)

    @before_send.setter
    def before_send(self, hook: Callable[[str], None] | None) -> None:
        self.local.before_send = hook

    @contextmanager
    def slot(self, host: str, deadline: Deadline, spacing: float = 0.0) -> Iterator[None]:
        token = uuid.uuid4().hex
        key = _key("slots", host)
        interval = max(self.min_interval, spacing)
        # renewed from before it is taken (a token not in the set is skipped) until given
        # back, so that no moment of a live fetch is left to the lease's first TTL
        leases = renewer()
        with leases.held(self.shared, key, token, slot=True):
            try:
                taken = self._acquire(host, token, interval, deadline)
            except redis.RedisError as exc:
                self.shared.failed(exc)
                taken = 0
            if not taken:  # Redis is down: this process's limits, as without Redis
                leases.drop(token)  # nothing in Redis to renew
                with self.local.slot(host, deadline, spacing):
                    yield
                return
            try:
                if taken == 1:  # the send is still to confirm
                    if self.before_send is not None:
                        self.before_send(host)
                    self._confirm(host, interval, deadline)
                yield
            finally:
                self.shared.call(lambda c: c.zrem(key, token), lambda: 0)

    def _confirm(self, host: str, interval: float, deadline: Deadline) -> None:
        """Return once this request may be sent (`HostLimiter.confirm_send` in Redis);
        with the in-process record of sends while Redis fails."""
        if interval <= 0:
            return
        keys = [_key("sent", host)]
        args = [_ms(interval), _sent_ttl(interval)]
        while True:
            status, wait_ms = self.shared.call(
                lambda _c: [int(v) for v in self.shared.confirm_script(keys, args)],
                lambda: [-1, 0],
            )
            if status == -1:
                self.local.confirm_send(host, deadline, interval)
                return
            if status == 1:
                return
            if wait_ms / 1000 > deadline.remaining():
                raise past_deadline(host)
            time.sleep(wait_ms / 1000)

    def _acquire(self, host: str, token: str, interval: float, deadline: Deadline) -> int:
        """Once a slot and a turn are taken (after waiting for the turn): 2 when the send
        was confirmed with them, 1 when it is still to confirm. 0 when Redis is not to be
        used; FetchError at the deadline."""
        keys = [_key("slots", host), _key("next", host), _key("sent", host)]
        # with a test hook between turn and send, the send is confirmed after the hook
        confirm = 0 if self.before_send is not None else 1
        while self.shared.available:
            args: list[str | int] = [
                token,
                self.max_concurrent,
                _ms(interval),
                _ms(deadline.remaining()),
                _ms(self.shared.lease_ttl),
                confirm,
                _sent_ttl(interval),
            ]
            status, wait_ms = (int(v) for v in self.shared.acquire_script(keys, args))
            if status > 0:
                if wait_ms > 0:
                    time.sleep(wait_ms / 1000)
                return status
            if status == -1:
                raise past_deadline(host)
            if deadline.remaining() <= 0:
                raise no_free_slot(host)
            time.sleep(min(max(wait_ms / 1000, 0.01), _POLL_MAX, deadline.remaining()))
        return 0


class SharedRobotsStore:
    """robots.txt verdicts per origin in Redis (JSON, expiring with their cache period),
    and the lock that lets one process fetch a robots.txt at a time."""

    def __init__(self, shared: SharedRedis) -> None:
        self.shared = shared

    def get(self, site: str) -> tuple[dict[str, Any], float] | None:
        """The stored verdict and the seconds it has left, or None."""
        pipe = self.shared.client.pipeline(transaction=False)
        pipe.get(_key("robots", site))
        pipe.pttl(_key("robots", site))
        raw, pttl = pipe.execute()
        if raw is None or pttl is None or int(pttl) <= 0:
            return None
        return json.loads(raw), int(pttl) / 1000

    def put(self, site: str, record: dict[str, Any], ttl: float) -> None:
        self.shared.client.set(_key("robots", site), json.dumps(record), px=max(1, _ms(ttl)))

    def lock(self, site: str) -> str | None:
        """A token when this process may fetch the robots.txt of `site`, else None. The
        lock is a lease (`LEASE_TTL`), renewed until `unlock`: a killed holder's lock
        runs out soon, a live slow fetch keeps it."""
        token = uuid.uuid4().hex
        key = _key("robots-lock", site)
        ok = self.shared.client.set(key, token, nx=True, px=_ms(self.shared.lease_ttl))
        if not ok:
            return None
        renewer().hold(self.shared, key, token, slot=False)
        return token

    def unlock(self, site: str, token: str) -> None:
        renewer().drop(token)
        self.shared.unlock_script([_key("robots-lock", site)], [token])


class LeaseRenewer:
    """The thread that keeps this process's live leases (slots and robots.txt locks)
    from running out: every third of the shortest lease TTL it extends all of them, one
    script call per Redis. A lease is renewed from `hold` to `drop`; one renewer per
    process (`renewer()`), its thread started with the first lease."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # token -> (its Redis, its key, a slot (True) or a lock)
        self._held: dict[str, tuple[SharedRedis, str, bool]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._period = LEASE_TTL / 3
        self._thread: threading.Thread | None = None

    def hold(self, shared: SharedRedis, key: str, token: str, slot: bool) -> None:
        with self._lock:
            self._held[token] = (shared, key, slot)
            if shared.lease_ttl / 3 < self._period:
                self._wake.set()  # a shorter lease than the current wait allows
            if self._thread is None:
                self._thread = self._start_thread()

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="newswatch-lease-renewer", daemon=True)
        thread.start()
        return thread

    def drop(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    @contextmanager
    def held(self, shared: SharedRedis, key: str, token: str, slot: bool) -> Iterator[None]:
        self.hold(shared, key, token, slot)
        try:
            yield
        finally:
            self.drop(token)

    def _run(self) -> None:
        while True:
            with self._lock:
                ttls = [shared.lease_ttl for shared, _, _ in self._held.values()]
                self._period = min(ttls, default=LEASE_TTL) / 3
            self._wake.wait(self._period)
            self._wake.clear()
            try:
                self.renew()
            except Exception:  # the thread must outlive any one round, or no lease lives
                log.exception("politeness: renewing the leases failed")

    def renew(self) -> None:
        """Extend every lease held now, per Redis. Redis unreachable: one warning
        (`SharedRedis.failed`), and the next round tries again; the fetches fall back on
        their own."""
        with self._lock:
            held = list(self._held.items())
        by_redis: dict[SharedRedis, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        for token, (shared, key, slot) in held:
            slots, locks = by_redis.setdefault(shared, ([], []))
            (slots if slot else locks).append((key, token))
        for shared, (slots, locks) in by_redis.items():
            keys = [key for key, _ in slots + locks]
            args: list[str | int] = [_ms(shared.lease_ttl), len(slots)]
            args += [token for _, token in slots + locks]
            try:
                shared.renew_script(keys, args)
            except redis.RedisError as exc:
                shared.failed(exc)


_renewer: LeaseRenewer | None = None
_renewer_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # a fork while another thread held the lock would leave the child's copy locked
    # forever; the child holds none of the parent's leases either
    global _renewer, _renewer_lock
    _renewer, _renewer_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def renewer() -> LeaseRenewer:
    """This process's renewer. A forked child (Celery's prefork pool) inherits the
    parent's object but not its thread, nor rightly its leases: it gets a new one."""
    global _renewer
    with _renewer_lock:
        if _renewer is None or _renewer.pid != os.getpid():
            _renewer = LeaseRenewer()
        return _renewer


def _key(kind: str, name: str) -> str:
    return f"{PREFIX}{kind}:{name}"


def _sent_ttl(interval: float) -> int:
    # the record of a host's last send outlives any interval, Crawl-delay included
    return _ms(max(MAX_SPACING, interval) + 1.0)


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))

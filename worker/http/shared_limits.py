"""Politeness shared through Redis: per-host concurrency and spacing, and the robots.txt
cache, held for every fetcher process on the same Redis (the broker's).

- A request takes a slot and a turn in one Lua script (atomic): per host a sorted set
  of leases (token -> expiry) is the concurrency semaphore, and a "next free" key the
  spacing. Times are the Redis server's (`TIME`), so workers on several hosts need no
  synchronised clocks. A lease expires on its own (the fetch's deadline plus a margin),
  so a killed process does not hold a slot for ever.
- When its turn has come, a request confirms its send in a second script against the
  host's "last sent" time (see host_limits: turns space the plan, this spaces the
  sends), and waits the difference if it is early.
- robots.txt verdicts are stored per origin for their cache period; a short lock lets
  one process fetch a robots.txt while the others wait for its verdict.
- Redis unreachable: the in-process limits and cache take over with a logged warning
  (checked again after `RETRY_AFTER` seconds); a fetch never fails because of Redis.
"""

from __future__ import annotations

import json
import logging
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
LEASE_MARGIN = 5.0  # seconds a slot outlives its fetch's deadline, then it expires
_POLL_MAX = 0.2  # seconds between two tries for a full host's slot

# KEYS: leases (zset), next free turn (ms). ARGV: token, max, interval ms, remaining ms,
# lease ms. Returns {1, wait ms} (slot and turn taken), {0, ms until a lease may end}
# (host full), {-1, wait ms} (turn past the deadline; nothing taken). next_turn() in
# host_limits is the same arithmetic.
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
return {1, wait}
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

T = TypeVar("T")


class SharedRedis:
    """The Redis client of the shared limits (`url` as redis-py reads it), and the
    fallback switch: `call` runs an
    operation on Redis, or the fallback while Redis is failing."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.acquire_script = self.client.register_script(_ACQUIRE)
        self.unlock_script = self.client.register_script(_UNLOCK)
        self.confirm_script = self.client.register_script(_CONFIRM)
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
        interval = max(self.min_interval, spacing)
        try:
            taken = self._acquire(host, token, interval, deadline)
        except redis.RedisError as exc:
            self.shared.failed(exc)
            taken = False
        if not taken:  # Redis is down: this process's limits, as without Redis
            with self.local.slot(host, deadline, spacing):
                yield
            return
        try:
            if self.before_send is not None:
                self.before_send(host)
            self._confirm(host, interval, deadline)
            yield
        finally:
            self.shared.call(lambda c: c.zrem(_key("slots", host), token), lambda: 0)

    def _confirm(self, host: str, interval: float, deadline: Deadline) -> None:
        """Return once this request may be sent (`HostLimiter.confirm_send` in Redis);
        with the in-process record of sends while Redis fails."""
        if interval <= 0:
            return
        keys = [_key("sent", host)]
        # the record outlives any interval, Crawl-delay included
        args = [_ms(interval), _ms(max(MAX_SPACING, interval) + 1.0)]
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

    def _acquire(self, host: str, token: str, interval: float, deadline: Deadline) -> bool:
        """True once a slot and a turn are taken (after waiting for the turn); False when
        Redis is not to be used; FetchError at the deadline."""
        keys = [_key("slots", host), _key("next", host)]
        while self.shared.available:
            remaining = deadline.remaining()
            lease = remaining + LEASE_MARGIN
            args: list[str | int] = [
                token,
                self.max_concurrent,
                _ms(interval),
                _ms(remaining),
                _ms(lease),
            ]
            status, wait_ms = (int(v) for v in self.shared.acquire_script(keys, args))
            if status == 1:
                if wait_ms > 0:
                    time.sleep(wait_ms / 1000)
                return True
            if status == -1:
                raise past_deadline(host)
            if deadline.remaining() <= 0:
                raise no_free_slot(host)
            time.sleep(min(max(wait_ms / 1000, 0.01), _POLL_MAX, deadline.remaining()))
        return False


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

    def lock(self, site: str, seconds: float) -> str | None:
        """A token when this process may fetch the robots.txt of `site` (for `seconds`,
        the fetch's deadline: a killed holder's lock runs out with it), else None."""
        token = uuid.uuid4().hex
        key = _key("robots-lock", site)
        ok = self.shared.client.set(key, token, nx=True, px=max(1, _ms(seconds)))
        return token if ok else None

    def unlock(self, site: str, token: str) -> None:
        self.shared.unlock_script([_key("robots-lock", site)], [token])


def _key(kind: str, name: str) -> str:
    return f"{PREFIX}{kind}:{name}"


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))

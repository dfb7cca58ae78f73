"""Deadlines timed by one watchdog thread (worker/http/deadline.py): each cuts its own
sockets at its time, a finished one cuts nothing, and a later one added first does not
hold up an earlier one."""

from __future__ import annotations

import socket
import threading

from worker.http.deadline import Deadline


def connected_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    return a, b


def test_each_deadline_cuts_its_own_sockets_and_a_finished_one_cuts_nothing() -> None:
    late = Deadline(30.0)  # queued first, due last
    soon, finished = Deadline(0.2), Deadline(0.1)
    (s1, p1), (s2, p2), (s3, p3) = connected_pair(), connected_pair(), connected_pair()
    late.watch(s1)
    soon.watch(s2)
    finished.watch(s3)
    finished.finish()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(s2.recv(10)))
    reader.start()
    reader.join(10)  # a blocked read is woken by the cut
    assert not reader.is_alive() and got == [b""] and soon.expired
    assert not finished.expired and not late.expired
    p3.sendall(b"x")
    assert s3.recv(1) == b"x"  # the finished deadline's socket still works
    p1.sendall(b"y")
    assert s1.recv(1) == b"y"
    late.finish()
    for s in (s1, p1, s2, p2, s3, p3):
        s.close()


def test_a_socket_watched_after_expiry_is_cut_at_once() -> None:
    deadline = Deadline(0.05)
    s, p = connected_pair()
    for _ in range(1000):  # up to 10 s
        if deadline.expired:
            break
        threading.Event().wait(0.01)
    assert deadline.expired
    deadline.watch(s)
    assert s.recv(1) == b""
    s.close()
    p.close()

"""SmtpSender against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.helpers import smtpserver as smtp_helpers
from tests.helpers.smtpserver import HOST, SmtpTestServer
from worker.alerts.email import MailError, SmtpSender
from worker.alerts.mail import render_email
from worker.alerts.render import Alert
from worker.config import ChannelSpec, SmtpSpec
from worker.core.model import Article, Hit, WatchlistMatch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # aiosmtpd internals

# the helper's fixtures, used by name below
make_smtp_server = smtp_helpers.make_smtp_server
smtp_server = smtp_helpers.smtp_server

CHANNEL = ChannelSpec(name="desk", email=("desk@example.org", "ops@example.org"), timezone="UTC")


def alert(delivery_id: str = "dlv-1", title: str = "PMF says it stays") -> Alert:
    body = "The Popular Mobilization Forces said on Tuesday it stays."
    article = Article(
        url="https://example.org/a",
        title=title,
        body=body,
        authors=("Jane Doe",),
        published=datetime(2024, 5, 1, 14, 3, tzinfo=UTC),
        source="world-news",
    )
    match = WatchlistMatch(
        watchlist="iraq-militias",
        hits=(Hit("body", 4, 31, "Popular Mobilization Forces", "PMF", "PMF"),),
        snippet=body,
        highlights=((4, 31),),
        names=("Popular Mobilization Forces",),
    )
    return Alert(delivery_id, "iraq-militias", article, match)


def sender_for(server: SmtpTestServer, **overrides: object) -> SmtpSender:
    return SmtpSender(
        server.spec(**overrides), ssl_context=server.client_ssl_context(), helo_name="localhost"
    )


def message(delivery_id: str = "dlv-1", title: str = "PMF says it stays"):
    return render_email([alert(delivery_id, title)], CHANNEL, "newswatch@example.org")


def test_a_rendered_alert_arrives_with_both_parts(smtp_server: SmtpTestServer) -> None:
    result = sender_for(smtp_server).send(message("dlv-1", "<img src=x onerror=alert(1)>"))

    assert result.message_id == "<dlv-1@newswatch>"
    assert result.refused == {}
    [got] = smtp_server.envelopes
    assert got.mail_from == "newswatch@example.org"
    assert sorted(got.rcpt_tos) == ["desk@example.org", "ops@example.org"]
    msg = got.message
    assert msg["Message-ID"] == "<dlv-1@newswatch>"
    assert msg["List-Id"] == "<iraq-militias.newswatch>"
    assert msg["X-Newswatch-Delivery"] == "dlv-1"
    assert msg["Date"] is not None  # stamped by the sender since render had no `now`
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "**Popular Mobilization Forces**" in text
    assert "<img src=x onerror=alert(1)>" in text
    assert "<mark" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_header_injection_does_not_reach_the_wire(smtp_server: SmtpTestServer) -> None:
    sender_for(smtp_server).send(message(title="Hi\r\nBcc: victim@example.org\r\n\r\nbody"))
    [got] = smtp_server.envelopes
    assert "victim@example.org" not in got.rcpt_tos
    assert got.message["Bcc"] is None
    assert got.message["Subject"] == "[iraq-militias] Hi Bcc: victim@example.org body"


def test_one_connection_for_a_batch(smtp_server: SmtpTestServer) -> None:
    with sender_for(smtp_server).session() as session:
        for i in range(5):
            session.send(message(f"dlv-{i}"))
    assert smtp_server.connections == 1
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids == [f"<dlv-{i}@newswatch>" for i in range(5)]


def test_message_id_is_the_same_when_resent(smtp_server: SmtpTestServer) -> None:
    sender = sender_for(smtp_server)
    sender.send(message("dlv-9"))
    sender.send(message("dlv-9"))  # e.g. a crash between "sent" and "recorded"
    first, second = smtp_server.messages
    assert first["Message-ID"] == second["Message-ID"] == "<dlv-9@newswatch>"
    assert smtp_server.connections == 2


def test_starttls_and_auth(make_smtp_server) -> None:
    server = make_smtp_server(tls="starttls", auth=("alerts", "s3cret"))
    with sender_for(server).session() as session:
        session.send(message("dlv-1"))
        session.send(message("dlv-2"))
    assert [(r.login, r.tls) for r in server.envelopes] == [("alerts", True), ("alerts", True)]
    assert server.connections == 1


def test_implicit_tls(make_smtp_server) -> None:
    server = make_smtp_server(tls="ssl", auth=("alerts", "s3cret"))
    sender_for(server).send(message())
    assert [(r.login, r.tls) for r in server.envelopes] == [("alerts", True)]


def test_wrong_password_is_permanent_and_never_logged(
    make_smtp_server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_smtp_server(tls="starttls", auth=("alerts", "s3cret"))
    sender = sender_for(server, password="hunter2-wrong")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(MailError) as info:
        sender.send(message())
    err = info.value
    assert (err.kind, err.permanent, err.code) == ("auth", True, 535)
    assert "hunter2" not in str(err) and "hunter2" not in repr(sender)
    assert "hunter2" not in caplog.text
    assert err.__cause__ is None  # no chained exception that could carry the login call
    assert server.envelopes == []


def test_untrusted_certificate_is_a_permanent_tls_error(make_smtp_server) -> None:
    server = make_smtp_server(tls="starttls")
    sender = SmtpSender(server.spec(), helo_name="localhost")  # system CAs only
    with pytest.raises(MailError) as info:
        sender.send(message())
    assert (info.value.kind, info.value.permanent) == ("tls", True)


def test_starttls_required_but_not_offered_is_permanent(smtp_server: SmtpTestServer) -> None:
    with pytest.raises(MailError) as info:
        sender_for(smtp_server, security="starttls").send(message())
    assert (info.value.kind, info.value.permanent) == ("tls", True)


def test_server_down_is_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.stop()
    sender = sender_for(smtp_server)
    with sender.session() as session:
        with pytest.raises(MailError) as first:
            session.send(message("dlv-1"))
        # the rest of the batch fails fast with the same verdict
        with pytest.raises(MailError) as second:
            session.send(message("dlv-2"))
    assert (first.value.kind, first.value.permanent) == ("connect", False)
    assert second.value is first.value

    smtp_server.start()  # same port: the same sender works again
    sender.send(message("dlv-3"))
    assert [m["Message-ID"] for m in smtp_server.messages] == ["<dlv-3@newswatch>"]


def test_refused_recipient_5xx_is_permanent(smtp_server: SmtpTestServer) -> None:
    smtp_server.reject_rcpt["desk@example.org"] = "550 5.1.1 no such user"
    smtp_server.reject_rcpt["ops@example.org"] = "550 5.1.1 no such user"
    with pytest.raises(MailError) as info:
        sender_for(smtp_server).send(message())
    assert (info.value.kind, info.value.permanent, info.value.code) == ("recipient", True, 550)
    assert "desk@example.org" in str(info.value)


def test_refused_recipient_4xx_is_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.reject_rcpt["desk@example.org"] = "450 4.2.1 mailbox busy"
    smtp_server.reject_rcpt["ops@example.org"] = "451 4.3.0 try later"
    with pytest.raises(MailError) as info:
        sender_for(smtp_server).send(message())
    assert (info.value.kind, info.value.permanent) == ("recipient", False)


def test_partly_refused_is_reported_not_raised(smtp_server: SmtpTestServer) -> None:
    smtp_server.reject_rcpt["ops@example.org"] = "550 5.1.1 no such user"
    result = sender_for(smtp_server).send(message())
    assert list(result.refused) == ["ops@example.org"]
    assert result.refused["ops@example.org"][0] == 550
    assert [r.rcpt_tos for r in smtp_server.envelopes] == [("desk@example.org",)]


def test_a_failed_message_does_not_spoil_the_rest_of_the_batch(
    smtp_server: SmtpTestServer,
) -> None:
    with sender_for(smtp_server).session() as session:
        session.send(message("dlv-1"))
        smtp_server.data_reply = "451 4.3.0 queue full"
        with pytest.raises(MailError) as info:
            session.send(message("dlv-2"))
        smtp_server.data_reply = None
        session.send(message("dlv-3"))
    assert (info.value.kind, info.value.permanent, info.value.code) == ("data", False, 451)
    assert [m["Message-ID"] for m in smtp_server.messages] == [
        "<dlv-1@newswatch>",
        "<dlv-3@newswatch>",
    ]
    assert smtp_server.connections == 1


def test_data_rejected_5xx_is_permanent(smtp_server: SmtpTestServer) -> None:
    smtp_server.data_reply = "554 5.6.0 message rejected"
    with pytest.raises(MailError) as info:
        sender_for(smtp_server).send(message())
    assert (info.value.kind, info.value.permanent) == ("data", True)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (a hung or filtered server)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_silent_server_times_out_as_temporary(silent_server: int) -> None:
    spec = SmtpSpec(host=HOST, port=silent_server, timeout=0.3)
    with pytest.raises(MailError) as info:
        SmtpSender(spec, helo_name="localhost").send(message())
    assert (info.value.kind, info.value.permanent) == ("timeout", False)


def test_reconnects_after_the_server_drops_the_connection(smtp_server: SmtpTestServer) -> None:
    with sender_for(smtp_server).session() as session:
        session.send(message("dlv-1"))
        smtp_server.stop()
        with pytest.raises(MailError) as info:
            session.send(message("dlv-2"))
        assert info.value.permanent is False
        smtp_server.start()
        session.send(message("dlv-3"))  # a fresh connection within the same session
    assert [m["Message-ID"] for m in smtp_server.messages] == [
        "<dlv-1@newswatch>",
        "<dlv-3@newswatch>",
    ]
    assert session.connections == 2


def test_message_without_recipients_is_permanent(smtp_server: SmtpTestServer) -> None:
    msg = message()
    del msg["To"]
    with pytest.raises(MailError) as info:
        sender_for(smtp_server).send(msg)
    assert (info.value.kind, info.value.permanent) == ("recipient", True)
    assert smtp_server.envelopes == []

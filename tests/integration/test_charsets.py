"""Legacy-labelled feeds and pages through the real fetch and parse steps.

A real HTTP server on 127.0.0.1 serves each feed and article in a legacy
charset whose label Python reads differently from the web (gb2312 with GBK
characters, iso-8859-1 with 0x80-0x9F, shift_jis with NEC/IBM extensions,
euc-kr with UHC syllables); the stored article must hold the name unharmed,
and the watchlist must alert on it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, run_all
from worker.store import models as m

# (source name, name in the text, codec, label, where the label is)
SCENES = [
    ("gbk-header", "朱镕基", "gb18030", "gb2312", "header"),
    ("gbk-decl", "朱镕基", "gb18030", "gb2312", "declaration"),
    ("latin1-header", "“Müller” €", "cp1252", "iso-8859-1", "header"),
    ("sjis-decl", "髙橋 ①", "cp932", "shift_jis", "declaration"),  # NEC and IBM rows
    ("euckr-header", "똠방각하", "cp949", "euc-kr", "header"),
]


def feed(title: str, link: str, label: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{label}"?>' if label else '<?xml version="1.0"?>'
    return (
        f'{decl}<rss version="2.0"><channel><title>T</title><item><title>{title} said</title>'
        f"<link>{link}</link><guid>{link}</guid></item></channel></rss>"
    )


def page(name: str, label: str | None) -> str:
    meta = f'<meta charset="{label}">' if label else ""
    para = (
        f"<p>{name} spoke to reporters on Monday about the budget, the harvest and the "
        "new railway line, and answered questions for more than an hour.</p>"
    )
    return (
        f"<html><head>{meta}<title>{name} said</title></head><body><article>"
        f"<h1>{name} said</h1>{para * 4}</article></body></html>"
    )


@pytest.mark.parametrize(("source", "name", "codec", "label", "where"), SCENES)
def test_a_legacy_label_reaches_the_alert_unharmed(
    tmp_path, database_url, http_server, source, name, codec, label, where
) -> None:
    http_server.add("/hook", b"", status=204)
    link = http_server.url(f"/a/{source}")
    if where == "header":
        body, ctype = feed(name, link, None), f"application/rss+xml; charset={label}"
        article, atype = page(name, None), f"text/html; charset={label}"
    else:  # the feed's XML declaration and the page's <meta charset>
        body, ctype = feed(name, link, label), "application/rss+xml"
        article, atype = page(name, label), "text/html"
    http_server.add("/feed.xml", body.encode(codec), headers={"Content-Type": ctype})
    http_server.add(f"/a/{source}", article.encode(codec), headers={"Content-Type": atype})
    config = f"""
sources:
  - name: {source}
    feed: {http_server.url("/feed.xml")}
    every: 5m
    full_text: true
watchlists:
  - name: w
    keywords: ["{name.split()[0].strip("“”")}"]
    notify: [hook]
channels:
  - name: hook
    webhook: {http_server.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
"""
    rt = make_runtime(tmp_path, database_url, config, Clock())
    sent = run_all(rt)
    with rt.store.session() as s:
        stored = s.scalars(select(m.Article)).one()
        item = s.scalars(select(m.Item)).one()
    assert name in stored.title and name in stored.body
    assert name in item.data["title"]
    assert len(sent) == 1  # the watched name alerted

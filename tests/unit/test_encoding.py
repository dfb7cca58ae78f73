"""Charset labels read as the WHATWG Encoding Standard reads them, for pages and feeds.

Each case is text a label's strict Python codec cannot decode, but the web's
reading of the label can: GBK characters under gb2312, 0x80-0x9F under
iso-8859-1, NEC/IBM extensions under shift_jis, UHC syllables under euc-kr...
"""

from __future__ import annotations

import codecs

import pytest

from worker.core import encoding
from worker.core.encoding import decode_feed, decode_html, encoding_for_label, feed_as_utf8
from worker.sources.feeds import parse_feed

# (text, the codec that writes it as the web does, the label servers put on it)
CASES = [
    pytest.param("朱镕基 会见 记者", "gb18030", "gb2312", id="gb2312-with-gbk-chars"),
    pytest.param("朱镕基", "gb18030", "GB_2312-80", id="gb_2312-80"),
    pytest.param("朱镕基", "gb18030", "x-gbk", id="x-gbk"),
    pytest.param("€ “quoted” — café ‘x’ …", "cp1252", "iso-8859-1", id="latin1-c1-bytes"),
    pytest.param("€ “quoted”", "cp1252", "us-ascii", id="us-ascii-is-1252"),
    pytest.param("①② ㈱ 髙 ⅰⅱ 株式会社", "cp932", "shift_jis", id="shift_jis-nec-ibm"),
    pytest.param("①髙ⅰ", "cp932", "x-sjis", id="x-sjis"),
    pytest.param("똠방각하 뷁 쓔", "cp949", "euc-kr", id="euc-kr-uhc-syllables"),
    pytest.param("똠방각하", "cp949", "ks_c_5601-1987", id="ks_c_5601-1987"),
    pytest.param("€ กรุงเทพ “x”", "cp874", "tis-620", id="tis-620-is-874"),
    pytest.param("€ กรุงเทพ", "cp874", "iso-8859-11", id="iso-8859-11-is-874"),
    pytest.param("€ İstanbul “ğış”", "cp1254", "iso-8859-9", id="iso-8859-9-is-1254"),
    pytest.param("香港 㗎 嘅 咗", "big5hkscs", "big5", id="big5-hkscs"),
    pytest.param("שלום", "cp1255", "windows-1255", id="windows-1255"),
    pytest.param("Привет", "cp1251", "x-cp1251", id="x-cp1251"),
]


def test_the_cases_are_not_decodable_by_pythons_reading_of_the_label() -> None:
    # the regression these tests guard: a strict codec for the label garbles or fails
    for case in CASES:
        text, codec, label = case.values
        if label.lower() in ("x-gbk", "x-sjis", "x-cp1251", "windows-1255"):
            continue  # labels Python does not know at all (or reads correctly)
        raw = text.encode(codec)
        assert raw.decode(label.replace("_2312-80", "2312"), "replace") != text, label


@pytest.mark.parametrize(("text", "codec", "label"), CASES)
def test_http_header_label(text: str, codec: str, label: str) -> None:
    body = f"<html><body><p>{text}</p></body></html>".encode(codec)
    assert text in decode_html(body, f"text/html; charset={label}")
    assert text in decode_html(body, f'text/html;charset="{label.upper()}"')


@pytest.mark.parametrize(("text", "codec", "label"), CASES)
def test_meta_charset_label(text: str, codec: str, label: str) -> None:
    body = f"<html><head><meta charset={label}><title>{text}</title></head></html>"
    assert text in decode_html(body.encode(codec))
    pragma = (
        f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={label}">'
        f"</head><body>{text}</body></html>"
    )
    assert text in decode_html(pragma.encode(codec))


def rss(text: str, label: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{label}"?>' if label else '<?xml version="1.0"?>'
    return (
        f'{decl}<rss version="2.0"><channel><title>T</title><item><title>{text}</title>'
        f"<link>http://example.test/1</link><description>{text}</description></item>"
        "</channel></rss>"
    )


@pytest.mark.parametrize(("text", "codec", "label"), CASES)
@pytest.mark.parametrize(
    "content_type", [None, "application/rss+xml", "text/xml", "application/xml; charset=utf-8"]
)
def test_feed_xml_declaration_label(
    text: str, codec: str, label: str, content_type: str | None
) -> None:
    # the server's default charset=utf-8 is wrong for the feed: its own declaration wins
    feed = parse_feed(rss(text, label).encode(codec), content_type)
    assert feed.entries[0].title == text
    assert feed.entries[0].summary == text


@pytest.mark.parametrize(("text", "codec", "label"), CASES)
def test_feed_http_header_label(text: str, codec: str, label: str) -> None:
    feed = parse_feed(rss(text, None).encode(codec), f"application/rss+xml; charset={label}")
    assert feed.entries[0].title == text


def test_the_whole_label_table() -> None:
    # every label of the standard, in any case and with surrounding whitespace
    assert len(encoding.LABELS) == 228
    for label, name in encoding.LABELS.items():
        assert encoding_for_label(label) == name
        assert encoding_for_label(f" \t{label.upper()}\n") == name
        # and every encoding decodes (the replacement encoding to one U+FFFD)
        assert isinstance(encoding.decode(b"abc\x80\xff", name), str)
    assert encoding_for_label("gb2312") == "gbk"
    assert encoding_for_label("iso-8859-1") == "windows-1252"
    assert encoding_for_label("tis-620") == "windows-874"
    assert encoding_for_label("euc-kr") == "euc-kr"


def test_labels_outside_the_table() -> None:
    # Python's aliases of the standard's encodings are accepted...
    assert encoding_for_label("latin-1") == "windows-1252"
    assert encoding_for_label("cp936") == "gbk"
    assert encoding_for_label("ms949") == "euc-kr"
    assert encoding_for_label("utf_8") == "utf-8"
    # ...anything else is no label: utf-7 smuggles markup, the rest is not text
    for label in ("utf-7", "klingon", "base64", "rot13", "unicode_escape", "hex", "", None):
        assert encoding_for_label(label) is None


def test_replacement_encodings_decode_to_one_replacement_character() -> None:
    body = b"<p>~{<:Ky2;S{#,NpJ)l6HK!#~}</p>"  # HZ: ASCII bytes that spell other text
    assert decode_html(body, "text/html; charset=hz-gb-2312") == "\ufffd"
    assert decode_html(body, "text/html; charset=iso-2022-kr") == "\ufffd"


def test_gb18030_lone_0x80_is_the_euro_sign() -> None:
    assert decode_html(b"<p>\x80 100</p>", "text/html; charset=gb2312") == "<p>€ 100</p>"


def test_x_user_defined() -> None:
    assert encoding.decode(b"a\x80\xff", "x-user-defined") == "a\uf780\uf7ff"


def test_meta_prescan_follows_the_html_standard() -> None:
    gbk = "朱镕基".encode("gb18030")
    # a declaration inside a comment is not one
    assert "朱镕基" in decode_html(b"<!-- <meta charset=utf-8> --><meta charset=gbk>" + gbk)
    # content="...charset=" counts only with the http-equiv pragma
    assert encoding.charset_from_meta(b'<meta content="text/html; charset=gbk">') is None
    # a quoted ">" inside another tag's attribute does not end the scan early
    assert encoding.charset_from_meta(b'<a title="x>y"><meta charset="gb2312">') == "gbk"
    # <meta/charset=...>, upper case, single quotes
    assert encoding.charset_from_meta(b"<META/CHARSET='Shift_JIS'>") == "shift_jis"
    # a meta saying utf-16 in ASCII-readable bytes is not utf-16; x-user-defined is 1252
    assert encoding.charset_from_meta(b'<meta charset="utf-16">') == "utf-8"
    assert encoding.charset_from_meta(b'<meta charset="x-user-defined">') == "windows-1252"
    # an unknown label is skipped, the next declaration counts
    assert encoding.charset_from_meta(b"<meta charset=klingon><meta charset=euc-kr>") == "euc-kr"
    # an XML declaration counts when there is no meta
    assert encoding.charset_from_meta(b'<?xml version="1.0" encoding="big5"?><html>') == "big5"


def test_header_wins_over_meta_and_bom_over_both() -> None:
    body = "<meta charset=gb2312><p>Привет</p>".encode("cp1251")
    assert "Привет" in decode_html(body, "text/html; charset=windows-1251")
    bom = codecs.BOM_UTF8 + "<meta charset=gb2312><p>朱镕基</p>".encode()
    assert "朱镕基" in decode_html(bom, "text/html; charset=iso-8859-1")


def test_undeclared_pages_are_still_detected() -> None:
    text = "<html><body><p>" + "Это длинный текст на русском языке о новостях. " * 20
    assert "русском" in decode_html((text + "</p></body></html>").encode("cp1251"))
    assert "русском" in decode_html(text.encode("utf-8"))


def test_feeds_in_utf16_and_utf32_without_a_label() -> None:
    doc = rss("朱镕基 €", None)
    for codec in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):
        assert parse_feed(doc.encode(codec)).entries[0].title == "朱镕基 €", codec


def test_feed_as_utf8_says_utf8() -> None:
    body, ctype = feed_as_utf8(rss("朱镕基", "gb2312").encode("gb18030"), "text/xml; charset=gbk")
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert "朱镕基".encode() in body and ctype == "text/xml; charset=utf-8"
    # no declaration: one is added, so feedparser's RFC 3023 defaults cannot apply
    body, ctype = feed_as_utf8(b"<rss version='2.0'/>", None)
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>') and ctype is None


def test_undecodable_bytes_are_replaced_not_raised() -> None:
    assert decode_feed(b"<rss>\xff\xfe\xfd\x81</rss>", "text/xml; charset=utf-8").startswith(
        "<rss>"
    )
    assert "\ufffd" in decode_html(b"<p>\x81\x20</p>", "text/html; charset=shift_jis")


def test_a_mislabelled_feed_is_guessed_not_garbled() -> None:
    # declared UTF-8 (header and declaration), sent as Latin-1: feedparser read it, so do we
    doc = rss("Café crème à la Müller", "utf-8").encode("latin-1")
    assert parse_feed(doc, "text/xml; charset=utf-8").entries[0].title == "Café crème à la Müller"


def test_a_feed_declaring_utf16_in_ascii_bytes_is_utf8() -> None:
    doc = rss("Café crème", "utf-16").encode()
    assert parse_feed(doc, "application/rss+xml").entries[0].title == "Café crème"


@pytest.mark.parametrize("label", ["gb2312", "iso-8859-1", "shift_jis", "windows-1251"])
@pytest.mark.parametrize("where", ["meta", "http"])
def test_a_legacy_label_on_utf8_bytes_loses_to_the_bytes(label: str, where: str) -> None:
    # a page re-saved as UTF-8 that kept its old declaration, or a server's default charset
    text = "朱镕基 met Müller and Дмитрий in Zürich"
    meta = f'<meta charset="{label}">' if where == "meta" else ""
    body = f"<html><head>{meta}<title>t</title></head><body><p>{text}</p></body></html>"
    content_type = f"text/html; charset={label}" if where == "http" else None
    assert text in decode_html(body.encode("utf-8"), content_type)


@pytest.mark.parametrize(
    ("label", "text"),
    [("gb2312", "朱镕基总理"), ("iso-8859-1", "Müller à Zürich"), ("shift_jis", "東京都の知事")],
)
def test_a_legacy_label_on_its_own_bytes_still_rules(label: str, text: str) -> None:
    body = f'<html><head><meta charset="{label}"></head><body><p>{text}</p></body></html>'
    codec = {"gb2312": "gb18030", "iso-8859-1": "cp1252", "shift_jis": "cp932"}[label]
    assert text in decode_html(body.encode(codec))

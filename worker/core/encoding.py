"""Bytes -> text for HTML pages and feeds, as browsers decode them, never raising.

Charset labels are resolved with the WHATWG Encoding Standard's label table
(https://encoding.spec.whatwg.org/#names-and-labels), and each encoding is
decoded with the Python codec that matches the standard's decoder. That is what
the web means by a label, and it differs from Python's own reading of it:

- `gb2312`, `gbk`, `x-gbk`... are GBK, decoded as gb18030 (its superset). A page
  labelled gb2312 routinely uses GBK characters: 朱镕基 has 镕, which is not in
  GB 2312, and Python's gb2312 codec turns it into garbage.
- `iso-8859-1`, `latin1`, `us-ascii`... are windows-1252: bytes 0x80-0x9F are
  €, curly quotes and dashes, not C1 controls.
- `shift_jis`/`sjis` are windows-31j (cp932: NEC and IBM extensions such as ①),
  `euc-kr` is windows-949 (cp949: all 11,172 Hangul syllables), `big5` is
  Big5-HKSCS, `tis-620`/`iso-8859-11` are windows-874, `iso-8859-9` is
  windows-1254.
- `hz-gb-2312`, `iso-2022-kr`, `iso-2022-cn` are the "replacement" encoding:
  they let ASCII bytes spell other text, so the standard decodes such a document
  as a single U+FFFD. `utf-7` is not a label at all.

A label outside the standard's table is still accepted when Python knows it as
one of the standard's encodings (`latin-1`, `cp936`, `ms949`); anything else is
no declaration at all.

Trust order for HTML (the HTML standard's sniffing): a byte order mark, the HTTP
Content-Type charset, the page's own <meta charset> / http-equiv declaration or
XML declaration (in the first 4 KB), then charset-normalizer's guess. One departure
from browsers: a declared legacy encoding loses to UTF-8 when the non-ASCII bytes
(first 64 KB) are all valid UTF-8, since mislabelled pages are common and a wrong
label garbles every accented or CJK name a watchlist looks for.

Feeds are XML: a byte order mark, then the first of the HTTP charset, the XML
declaration and UTF-8 (XML's default) that decodes without an error (servers
often send a default charset that the feed itself contradicts, which is what
feedparser allows for too), then charset-normalizer's guess. A declaration of
UTF-16 in ASCII-readable bytes cannot be true and is read as UTF-8. `feed_as_utf8`
hands feedparser UTF-8 that says so, so feedparser never applies its own label
mapping (which garbles shift_jis, euc-kr, big5 and x-gbk).

Bytes invalid in the chosen encoding are replaced with U+FFFD.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_META_SCAN_BYTES = 4096
# Enough bytes for a confident guess; scanning 20 MB would be slow.
_DETECT_BYTES = 64 * 1024

# The WHATWG Encoding Standard, section 4.2 "Names and labels": encoding -> labels.
_LABELS: dict[str, str] = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "ibm866": "866 cp866 csibm866 ibm866",
    "iso-8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 "
    "iso_8859-2:1987 l2 latin2",
    "iso-8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 "
    "iso_8859-3:1988 l3 latin3",
    "iso-8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 "
    "iso_8859-4:1988 l4 latin4",
    "iso-8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 "
    "iso_8859-5 iso_8859-5:1988",
    "iso-8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 "
    "iso-8859-6 iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 "
    "iso_8859-6:1987",
    "iso-8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 "
    "iso8859-7 iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso-8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
    "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual",
    "iso-8859-8-i": "csiso88598i iso-8859-8-i logical",
    "iso-8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso-8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso-8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso-8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso-8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "macintosh": "csmacintosh mac macintosh x-mac-roman",
    "windows-874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "windows-1250": "cp1250 windows-1250 x-cp1250",
    "windows-1251": "cp1251 windows-1251 x-cp1251",
    "windows-1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 "
    "iso-ir-100 iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii "
    "windows-1252 x-cp1252",
    "windows-1253": "cp1253 windows-1253 x-cp1253",
    "windows-1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
    "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    "windows-1255": "cp1255 windows-1255 x-cp1255",
    "windows-1256": "cp1256 windows-1256 x-cp1256",
    "windows-1257": "cp1257 windows-1257 x-cp1257",
    "windows-1258": "cp1258 windows-1258 x-cp1258",
    "x-mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gbk": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk",
    "gb18030": "gb18030",
    "big5": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc-jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso-2022-jp": "csiso2022jp iso-2022-jp",
    "shift_jis": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "euc-kr": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
    "ksc5601 ksc_5601 windows-949",
    "replacement": "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement",
    "utf-16be": "unicodefffe utf-16be",
    "utf-16le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
    "x-user-defined": "x-user-defined",
}
LABELS: dict[str, str] = {
    label: name for name, labels in _LABELS.items() for label in labels.split()
}

# The Python codec that decodes like the standard's decoder, where the names differ.
# (The standard's koi8-u is KOI8-RU and its x-mac-cyrillic is the Ukrainian variant;
# Python's codecs differ from them in two or three letters.)
_CODECS: dict[str, str] = {
    "ibm866": "cp866",
    "iso-8859-8-i": "iso8859-8",
    "macintosh": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "windows-874": "cp874",
    **{f"windows-{n}": f"cp{n}" for n in range(1250, 1259)},
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "iso-2022-jp": "iso2022_jp_ext",  # the standard's decoder takes half-width katakana too
    "shift_jis": "cp932",
    "euc-kr": "cp949",
    "utf-16be": "utf-16-be",
    "utf-16le": "utf-16-le",
}
# no Python codec of their own, or one shared with another encoding
_NOT_FROM_PYTHON = frozenset({"replacement", "x-user-defined", "gbk", "iso-8859-8-i"})
# Python's canonical codec name -> the standard's encoding, for labels outside the table.
_FROM_PYTHON: dict[str, str] = {
    codecs.lookup(python_name).name: name
    for python_name, name in [
        *((_CODECS.get(n, n), n) for n in _LABELS if n not in _NOT_FROM_PYTHON),
        ("gbk", "gbk"),
        ("gb2312", "gbk"),
        ("hz", "replacement"),
        ("iso2022_kr", "replacement"),
        ("latin-1", "windows-1252"),
        ("ascii", "windows-1252"),
        ("iso8859-11", "windows-874"),
        ("tis-620", "windows-874"),
        ("iso8859-9", "windows-1254"),
        ("shift_jis", "shift_jis"),
        ("euc_kr", "euc-kr"),
        ("big5", "big5"),
        ("iso2022_jp", "iso-2022-jp"),
        ("utf-16", "utf-16le"),
        ("utf-8-sig", "utf-8"),
    ]
}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
)

# x-user-defined: 0x80-0xFF are U+F780-U+F7FF (after a latin-1 decode they are U+0080-U+00FF)
_X_USER_DEFINED = {b: 0xF780 + b - 0x80 for b in range(0x80, 0x100)}


def _gb18030_euro(exc: UnicodeError) -> tuple[str, int]:
    # The standard's gb18030 decoder reads a lone 0x80 as the euro sign (as GBK did).
    if isinstance(exc, UnicodeDecodeError) and exc.object[exc.start] == 0x80:
        return "\u20ac", exc.start + 1
    return "\ufffd", exc.end  # type: ignore[attr-defined]


codecs.register_error("newswatch-gb18030", _gb18030_euro)


def encoding_for_label(label: str | bytes | None) -> str | None:
    """The standard's encoding name for a charset label, or None ("failure")."""
    if isinstance(label, bytes):
        label = label.decode("latin-1")
    if not label:
        return None
    key = label.strip("\t\n\f\r ").lower()
    name = LABELS.get(key)
    if name is not None:
        return name
    try:
        python_name = codecs.lookup(key).name
    except (LookupError, ValueError):
        return None
    return _FROM_PYTHON.get(python_name)


def decode(body: bytes, encoding: str, errors: str = "replace") -> str:
    """Decode with one of the standard's encodings (a name from `encoding_for_label`)."""
    if encoding == "replacement":
        return "\ufffd" if body else ""
    if encoding == "x-user-defined":
        return body.decode("latin-1").translate(_X_USER_DEFINED)
    codec = _CODECS.get(encoding, encoding)
    if codec == "gb18030" and errors == "replace":
        errors = "newswatch-gb18030"
    return body.decode(codec, errors)


# --- declarations --------------------------------------------------------------


def _bom(body: bytes) -> tuple[str, int] | None:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    return None


_HEADER_CHARSET = re.compile(
    r"""(?:^|;)\s*charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;,"']+))""", re.I
)


def charset_from_content_type(content_type: str | None) -> str | None:
    """The encoding a Content-Type header's charset parameter names, if it names one."""
    if not content_type:
        return None
    for m in _HEADER_CHARSET.finditer(content_type):
        found = encoding_for_label(m.group(1) or m.group(2) or m.group(3))
        if found:
            return found
    return None


_SPACE = b"\t\n\f\r "


def _skip(data: bytes, pos: int, chars: bytes = _SPACE) -> int:
    while pos < len(data) and data[pos] in chars:
        pos += 1
    return pos


def _attribute(data: bytes, pos: int) -> tuple[tuple[str, str] | None, int]:
    """The HTML standard's "get an attribute" (of the prescan): (name, value), position."""
    pos = _skip(data, pos, _SPACE + b"/")
    n = len(data)
    if pos >= n or data[pos] == 0x3E:  # ">"
        return None, pos
    name = bytearray()
    while pos < n:  # the name
        c = data[pos]
        if c == 0x3D and name:  # "="
            pos += 1
            break
        if c in _SPACE:
            pos = _skip(data, pos)
            if pos >= n or data[pos] != 0x3D:
                return (name.decode("latin-1").lower(), ""), pos
            pos += 1
            break
        if c in b"/>":
            return (name.decode("latin-1").lower(), ""), pos
        name.append(c)
        pos += 1
    else:
        return (name.decode("latin-1").lower(), ""), pos
    pos = _skip(data, pos)
    key = name.decode("latin-1").lower()
    if pos >= n:
        return (key, ""), pos
    if data[pos] in b"\"'":  # a quoted value
        end = data.find(data[pos : pos + 1], pos + 1)
        if end < 0:
            return (key, data[pos + 1 :].decode("latin-1").lower()), n
        return (key, data[pos + 1 : end].decode("latin-1").lower()), end + 1
    if data[pos] == 0x3E:
        return (key, ""), pos
    start = pos
    while pos < n and data[pos] not in _SPACE and data[pos] != 0x3E:
        pos += 1
    return (key, data[start:pos].decode("latin-1").lower()), pos


_CONTENT_CHARSET = re.compile(r"charset\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s;\"']+))", re.I)


def _meta_label(attributes: dict[str, str]) -> str | None:
    """A <meta>'s declared label: its charset attribute, or the charset= of its content
    attribute when it is an http-equiv=content-type pragma."""
    if "charset" in attributes:
        return attributes["charset"]
    if attributes.get("http-equiv") == "content-type" and "content" in attributes:
        m = _CONTENT_CHARSET.search(attributes["content"])
        if m:
            return m.group(1) or m.group(2) or m.group(3)
    return None


def _meta_encoding(label: str | bytes | None) -> str | None:
    found = encoding_for_label(label)
    # a page whose <meta> is readable as ASCII is not UTF-16; x-user-defined means 1252 here
    if found in ("utf-16be", "utf-16le"):
        return "utf-8"
    if found == "x-user-defined":
        return "windows-1252"
    return found


_TAG_START = re.compile(rb"<(/?)([a-zA-Z])")


def charset_from_meta(body: bytes) -> str | None:
    """The HTML standard's prescan of the first bytes for <meta charset>, comments skipped;
    an XML declaration counts when there is no <meta>."""
    data = body[:_META_SCAN_BYTES]
    pos, n = 0, len(data)
    while pos < n:
        lt = data.find(b"<", pos)
        if lt < 0:
            break
        if data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 2)
            if end < 0:
                break
            pos = end + 3
            continue
        tag = _TAG_START.match(data, lt)
        if tag is None:
            if data.startswith((b"<!", b"<?", b"</"), lt):
                end = data.find(b">", lt)
                if end < 0:
                    break
                pos = end + 1
            else:
                pos = lt + 1
            continue
        pos = tag.end() - 1
        while pos < n and data[pos] not in _SPACE and data[pos] not in b"/>":
            pos += 1
        is_meta = not tag.group(1) and data[lt + 1 : pos].lower() == b"meta"
        attributes: dict[str, str] = {}
        while True:
            attr, pos = _attribute(data, pos)
            if attr is None:
                break
            attributes.setdefault(*attr)  # the first of a repeated attribute counts
        pos += 1
        if is_meta:
            found = _meta_encoding(_meta_label(attributes))
            if found:
                return found
    return xml_declared_encoding(body)


_XML_DECL = re.compile(
    rb"""\s*<\?xml[^>]*?\sencoding\s*=\s*(?:"([^"\s<>]*)"|'([^'\s<>]*)')[^>]*>""", re.I
)


def xml_declared_encoding(body: bytes) -> str | None:
    """The encoding in an XML declaration at the very start (`<?xml ... encoding="..."?>`)."""
    m = _XML_DECL.match(body[:1024])
    return _meta_encoding(m.group(1) or m.group(2)) if m else None


# --- decoding -----------------------------------------------------------------


def _detect(body: bytes) -> str:
    sample = body[:_DETECT_BYTES]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A truncated multi-byte char at the end of the sample is still UTF-8.
        if exc.start >= len(sample) - 3:
            return "utf-8"
    results = list(from_bytes(sample))
    if not results:
        return "windows-1252"
    best = results[0]
    # Ties are common on short Western text; the web's most common legacy charset wins them.
    for match in results:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.01:
            return "windows-1252"
    found = encoding_for_label(best.encoding)
    return found if found not in (None, "replacement", "x-user-defined") else "utf-8"


def html_encoding(body: bytes, content_type: str | None = None) -> str:
    """The encoding an HTML body is decoded with (one of the standard's names)."""
    bom = _bom(body)
    if bom:
        return bom[0]
    declared = charset_from_content_type(content_type) or charset_from_meta(body)
    if declared is None:
        return _detect(body)
    if declared not in ("utf-8", "utf-16le", "utf-16be") and _is_utf8_text(body):
        return "utf-8"
    return declared


def _is_utf8_text(body: bytes) -> bool:
    """Non-ASCII bytes that are all valid UTF-8: the label is wrong (a page re-saved as
    UTF-8 that kept its old <meta charset>, a server's default charset). Text in a legacy
    encoding with non-ASCII characters is almost never valid UTF-8 (its lead and
    continuation bytes would have to pair up throughout), so the bytes are the better
    evidence; following the label would garble every non-ASCII name on the page."""
    head = body[:_DETECT_BYTES]
    if head.isascii():
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a character cut by the sample's end is not evidence against UTF-8
        return len(body) > len(head) and exc.start >= len(head) - 3
    return True


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML body; never raises, replaces undecodable bytes."""
    if isinstance(body, str):  # be forgiving to callers that already decoded
        return body
    bom = _bom(body)
    if bom:
        return decode(body[bom[1] :], bom[0])
    return decode(body, html_encoding(body, content_type))


# Feeds without a byte order mark may still start with "<?" in UTF-16 or UTF-32
# (XML 1.0 appendix F); UTF-32 is not a web encoding, but it is a valid XML one.
_XML_MARKS = (
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (codecs.BOM_UTF8, "utf-8", 3),
    (codecs.BOM_UTF16_BE, "utf-16be", 2),
    (codecs.BOM_UTF16_LE, "utf-16le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<\x00?", "utf-16be", 0),
    (b"<\x00?\x00", "utf-16le", 0),
)


def _decodes_cleanly(body: bytes, encoding: str) -> bool:
    # a multi-byte character cut at the end (a truncated body) is not a wrong encoding
    try:
        codec = codecs.getincrementaldecoder(_CODECS.get(encoding, encoding))("strict")
    except LookupError:
        return encoding in ("replacement", "x-user-defined")
    try:
        codec.decode(body, final=False)
    except UnicodeDecodeError:
        return False
    return True


def decode_feed(body: bytes, content_type: str | None = None) -> str:
    """Decode an XML feed; never raises, replaces undecodable bytes."""
    for mark, name, skip in _XML_MARKS:
        if body.startswith(mark):
            return decode(body[skip:], name)
    declared = [
        e for e in (charset_from_content_type(content_type), xml_declared_encoding(body)) if e
    ]
    for encoding in dict.fromkeys([*declared, "utf-8"]):
        if _decodes_cleanly(body, encoding):
            return decode(body, encoding)
    # mislabelled (a UTF-8 label on Latin-1 text is common): guess, as feedparser does
    return decode(body, _detect(body))


_XML_DECL_ANY = re.compile(r"\A\s*<\?xml\b[^>]*>")
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^;]*)", re.I)


def feed_as_utf8(body: bytes, content_type: str | None = None) -> tuple[bytes, str | None]:
    """The feed as UTF-8 bytes whose XML declaration and Content-Type say UTF-8.

    feedparser decodes bytes itself with Python's reading of the labels; given this,
    its first guess (UTF-8) is right and nothing is decoded twice.
    """
    text = decode_feed(body, content_type)
    declaration = '<?xml version="1.0" encoding="utf-8"?>'
    text, found = _XML_DECL_ANY.subn(declaration, text, count=1)
    if not found:
        text = declaration + "\n" + text
    if content_type:
        content_type = _CHARSET_PARAM.sub("", content_type).strip() + "; charset=utf-8"
    return text.encode("utf-8", "replace"), content_type

"""Body paragraphs are kept unless the page itself marks them as furniture
(worker/articles/furniture.py), and reader comments never reach the body."""

from __future__ import annotations

import lxml.html

from worker.articles.body import drop_boilerplate, drop_header_lines
from worker.articles.extract import extract_page
from worker.articles.furniture import drop_furniture, drop_hidden_metadata

PROSE = [
    "The city council voted on Tuesday to close the old harbour bridge to heavy traffic "
    "after engineers found corrosion in three of its supporting columns.",
    "The mayor said the closure would last at least six months while repairs are planned, "
    "and that buses would be rerouted over the northern crossing.",
    "Local shop owners warned that the detour would cost them customers during the busy "
    "summer season, and asked the council for help with the lost trade.",
]
URL = "https://news.example/2024/05/bridge"


def page(extra: str, article_class: str = "story") -> lxml.html.HtmlElement:
    paras = "".join(f"<p>{p}</p>" for p in PROSE)
    html = f"<html><body><article class='{article_class}'>{paras}</article>{extra}</body></html>"
    return lxml.html.document_fromstring(html)


def test_paragraph_in_furniture_markup_is_dropped() -> None:
    for box in (
        "<aside><p>Read our guide to the city's bridges</p></aside>",
        "<nav><ul><li>Home</li></ul></nav>",
        "<div class='newsletter-box'><p>Get the morning briefing in your inbox</p></div>",
        "<div role='complementary'><p>Most popular this week</p></div>",
        "<div class='cookie_notice'><p>We use cookies to improve your visit</p></div>",
    ):
        tree = page(box)
        furniture = tree.xpath("//aside|//nav|//div")[0].text_content().strip()
        out = drop_furniture(tree, [*PROSE, furniture], URL)
        assert out == PROSE, box


def test_article_container_with_a_furniture_name_is_not_furniture() -> None:
    # "has-share-bar" on the article itself: it holds every paragraph, so it is the article.
    tree = page("", article_class="post has-share-bar")
    tree.find(".//article").tag = "div"
    assert drop_furniture(tree, PROSE, URL) == PROSE


def test_names_count_only_as_whole_tokens() -> None:
    tree = page("<div class='shared-story adventure'><p>A short unsure paragraph.</p></div>")
    assert drop_furniture(tree, [*PROSE, "A short unsure paragraph."], URL)[-1] == (
        "A short unsure paragraph."
    )


def test_teaser_linking_inside_the_site_is_dropped_a_link_out_is_kept() -> None:
    teaser = "<p><a href='/2024/05/ferry'>Ferry fares to rise in June</a></p>"
    product = "<p><a href='https://shop.example/kettle'>Steel kettle for $19.99</a></p>"
    tree = page(teaser + product)
    out = drop_furniture(
        tree, [*PROSE, "Ferry fares to rise in June", "Steel kettle for $19.99"], URL
    )
    assert out == [*PROSE, "Steel kettle for $19.99"]


def test_hidden_text_and_title_copies_are_dropped() -> None:
    tree = page("<div style='display: none'><p>Thank you for subscribing</p></div>")
    title = "Harbour bridge closed to lorries"
    out = drop_furniture(tree, [title, *PROSE, "Thank you for subscribing", title], URL, title)
    assert out == PROSE


def test_unmatched_paragraphs_are_kept() -> None:
    # No evidence in the page (the extractor spaced or joined it differently): kept.
    assert drop_furniture(page(""), [*PROSE, "Text the page does not hold as a block"], URL) == [
        *PROSE,
        "Text the page does not hold as a block",
    ]


def test_hidden_schema_metadata_is_removed_before_extraction() -> None:
    tree = page(
        "<div style='display:none' itemscope itemtype='http://schema.org/NewsArticle'>"
        "<div itemprop='datePublished'>2024-05-02T08:00:00+01:00</div></div>"
        "<div style='display:none' class='later'><p>Hidden but not metadata</p></div>"
    )
    drop_hidden_metadata(tree)
    text = tree.text_content()
    assert "2024-05-02" not in text
    assert "Hidden but not metadata" in text


def test_lone_byline_cue_word_and_follow_prompts_are_dropped() -> None:
    follow = "Follow Harbour News on Facebook, Twitter and Instagram."
    assert drop_boilerplate(["by", *PROSE, "Written by", follow]) == PROSE
    kept = "Follow the money, the mayor said on Tuesday."
    assert drop_boilerplate([*PROSE, kept]) == [*PROSE, kept]


def test_the_pages_headline_is_dropped_even_when_the_title_differs() -> None:
    tree = page("<div class='head'><h1>Bridge shut: what it means for you</h1></div>")
    out = drop_furniture(tree, ["Bridge shut: what it means for you", *PROSE], URL, "Bridge")
    assert out == PROSE


COMMENTED = """<html><head><title>Bridge closed</title></head><body>
<header><nav><a href='/'>Home</a> <a href='/news'>News</a></nav></header>
<article><h1>Bridge closed</h1>{paras}
<p>Repairs start in July.</p>
</article>
<section id='comments' class='comments-area'><h2>3 comments</h2>
<ol class='comment-list'>
<li class='comment'><div class='comment-author'>Zanzibar Quuxley</div>
<p>Flibbertigibbet: the council should have closed the bridge years ago, everyone knew it.</p></li>
<li class='comment'><div class='comment-author'>Ottoline Brackwater</div>
<p>Flibbertigibbet again, the buses on the northern crossing are already full every morning.</p>
</li></ol></section>
<footer><p>Copyright 2024 News Example</p></footer></body></html>"""


def test_reader_comments_stay_out_and_short_body_lines_stay_in() -> None:
    paras = "".join(f"<p>{p}</p>" for p in PROSE)
    body = extract_page(COMMENTED.format(paras=paras), URL).body
    for p in PROSE:
        assert p in body
    assert "Repairs start in July." in body  # short, but nothing marks it as furniture
    for word in ("Flibbertigibbet", "Zanzibar", "Ottoline", "Copyright"):
        assert word not in body


LOOSE = """<html><head><title>Deals of the day</title></head><body><article>
<h1>Deals of the day</h1><section class="article-page">{loose}<p></p>
<h2>Kettle for $19</h2><a href="https://shop.example/k"><img src="k.jpg"></a>The steel kettle has
dropped to its lowest price this year at the hardware shop on the high street, and the offer runs
until the end of the week.<br><ul><li><a href="https://shop.example/k">Get it for $19</a></li></ul>
<h2>Lamp for $25</h2><a href="https://shop.example/l"><img src="l.jpg"></a>A reading lamp with three
brightness settings is down by a third, the first discount on it since the shop started selling it
in the spring.<br><ul><li><a href="https://shop.example/l">Get it for $25</a></li></ul>
</section></article></body></html>"""


def test_loose_text_after_a_heading_is_kept() -> None:
    body = extract_page(LOOSE.format(loose=" ".join(PROSE)), URL).body
    assert "lowest price this year" in body
    assert "first discount on it since" in " ".join(body.split())


def test_author_lines_above_the_first_paragraph_are_dropped() -> None:
    lines = ["Jan Smit", "By Ann Lee and Jan Smit", *PROSE, "Jan Smit"]
    out = drop_header_lines(lines, "Bridge closed", ("Jan Smit", "Ann Lee"))
    assert out == [*PROSE, "Jan Smit"]  # a name below the body's start is text
    assert drop_header_lines(["Jan Smit", *PROSE], "Bridge closed") == ["Jan Smit", *PROSE]

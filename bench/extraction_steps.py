"""What each step of newswatch's body extraction removes: body or furniture.

    .venv/bin/python bench/extraction.py --steps     (or run this file directly)

The pipeline of worker/articles/extract.py is replayed step by step on the shared
benchmark. After each step the text's 4-token shingles are compared with the truth's:
a step that loses shingles of the truth removed body text; one that loses the others
removed furniture (negative numbers: the step added text). trafilatura's own modes are
compared too (precision against default against recall), since precision mode is a
cleanup step of its own.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.extraction import load_body, shingles, tokens
from worker.articles import body as B
from worker.articles.extract import _parse, _to_text
from worker.articles.furniture import drop_furniture, drop_hidden_metadata
from worker.articles.metadata import meta_jsonld, meta_og, page_title
from worker.articles.text import word_count


def _paras(text: str, url: str, precision: bool) -> list[str]:
    tree = _parse(text)
    if not precision:
        drop_hidden_metadata(tree)
    doc = B.trafilatura_doc(tree, url, precision=precision)
    return B.block_texts(doc.body) if doc is not None and doc.body is not None else []


def stages(html: bytes, url: str) -> list[tuple[str, list[str]]]:
    """The paragraphs after each step, in the order extract.py runs them."""
    text = _to_text(html, None)
    tree = _parse(text)
    ld, og = meta_jsonld(tree), meta_og(tree)
    sites = [n for n in (og.site_name, ld.site_name, ld.publisher) if n]
    title = page_title(tree, ld.title, og.titles, sites, "")
    out = [("trafilatura precision mode (for comparison)", _paras(text, url, True))]
    paras = _paras(text, url, False)
    out.append(("trafilatura default mode (the base)", paras))
    original = _parse(text)
    paras = B.continuations(original, paras)
    out.append(("sibling blocks (continuations)", paras))
    if sum(word_count(p) for p in paras) < 120:
        alt = B.readability_text(text)
        if sum(word_count(p) for p in alt) > 2 * sum(word_count(p) for p in paras):
            paras = alt
    out.append(("readability fallback", paras))
    out.append(("furniture evidence (markup, links)", drop_furniture(original, paras, url, title)))
    paras = out[-1][1]
    out.extend(_boilerplate_steps(paras))
    paras = out[-1][1]
    out.append(("header lines (title/byline/date)", B.drop_header_lines(paras, title)))
    return out


def _boilerplate_steps(paras: list[str]) -> list[tuple[str, list[str]]]:
    """drop_boilerplate split in its two rules: the end-of-article cut, then furniture lines."""
    n = len(paras)
    cut = paras
    for i, p in enumerate(paras):
        if B._END_MARKER.match(p) and i >= n * 2 / 3 and i > 0:
            cut = paras[:i]
            break
    lines = [p for p in cut if not (word_count(p) <= 14 and B._FURNITURE_LINE.match(p))]
    return [("end-of-article heading cut", cut), ("furniture lines", lines)]


def _split_counts(paras: list[str], truth: Counter) -> tuple[int, int]:
    got = shingles(tokens("\n".join(paras)))
    return sum((got & truth).values()), sum((got - truth).values())


def report_steps(dataset: Path, show: Callable[[str], None] = print) -> None:
    pages, truth, urls = load_body(dataset)
    deltas: dict[str, list[int]] = {}
    worst: dict[str, list[tuple[int, str]]] = {}
    for key, html in pages.items():
        gold = shingles(tokens(truth[key]))
        prev = None
        for name, paras in stages(html, urls[key]):
            body, furn = _split_counts(paras, gold)
            if prev is not None:
                d = deltas.setdefault(name, [0, 0, 0])
                d[0] += prev[0] - body
                d[1] += prev[1] - furn
                d[2] += prev[0] > body
                if prev[0] > body:
                    worst.setdefault(name, []).append((prev[0] - body, key))
            prev = (body, furn)
    show(
        "step (applied to the previous step's text)      body shingles removed  "
        "furniture removed  pages losing body"
    )
    for name, (b, f, n) in deltas.items():
        show(f"{name:<46} {b:>10} {f:>18} {n:>10}")
    for name, rows in worst.items():
        show(
            f"  {name}: most body lost on "
            + ", ".join(f"{k[:8]} ({v})" for v, k in sorted(rows)[::-1][:5])
        )


if __name__ == "__main__":
    report_steps(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path("/work/shared/data/article-extraction-benchmark")
    )

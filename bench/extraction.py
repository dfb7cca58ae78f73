"""Score article-body extraction on the article-extraction-benchmark dataset.

    .venv/bin/python bench/extraction.py --dataset /work/shared/data/article-extraction-benchmark

Metric as published with the dataset (see /work/shared/data/README.md): \\w+
tokens, multisets of 4-token shingles, per-page TP/FP/FN normalised by their
sum, precision/recall = means over pages, F1 = 2PR/(P+R), accuracy = share of
pages whose token list equals the truth's. Runs newswatch's extract_page and
plain trafilatura.extract in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trafilatura

from worker.articles.extract import ExtractionError, extract_page

_TOKEN = re.compile(r"\w+")
Extractor = Callable[[bytes, str], str]


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def shingles(toks: list[str], n: int = 4) -> Counter[tuple[str, ...]]:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def page_counts(pred: str, truth: str) -> tuple[float, float, float]:
    """Normalised (tp, fp, fn) for one page."""
    p, t = shingles(tokens(pred)), shingles(tokens(truth))
    tp = sum((p & t).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def score(preds: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    precisions, recalls, exact = [], [], 0
    for key, gold in truth.items():
        pred = preds.get(key, "")
        tp, fp, fn = page_counts(pred, gold)
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
        exact += tokens(pred) == tokens(gold)
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"f1": f1, "precision": p, "recall": r, "accuracy": exact / len(truth)}


def run_newswatch(html: bytes, url: str) -> str:
    try:
        return extract_page(html, url).body
    except ExtractionError:
        return ""


def run_trafilatura(html: bytes, url: str) -> str:
    return trafilatura.extract(html, url=url) or ""


def load(dataset: Path) -> tuple[dict[str, bytes], dict[str, str], dict[str, str]]:
    gold = json.loads((dataset / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {k: gzip.decompress((dataset / "html" / f"{k}.html.gz").read_bytes()) for k in gold}
    truth = {k: v["articleBody"] for k, v in gold.items()}
    urls = {k: v["url"] for k, v in gold.items()}
    return pages, truth, urls


def evaluate(name: str, fn: Extractor, pages, truth, urls) -> dict[str, float]:
    start = time.perf_counter()
    preds = {k: fn(html, urls[k]) for k, html in pages.items()}
    elapsed = time.perf_counter() - start
    result = score(preds, truth)
    result["pages_per_s"] = len(pages) / elapsed
    print(
        f"{name:<12} F1 {result['f1']:.3f}  P {result['precision']:.3f}  "
        f"R {result['recall']:.3f}  accuracy {result['accuracy']:.3f}  "
        f"{result['pages_per_s']:.1f} pages/s"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--only", choices=["newswatch", "trafilatura"], default=None)
    args = parser.parse_args(argv)
    pages, truth, urls = load(args.dataset)
    print(f"{len(pages)} pages from {args.dataset}")
    runners = {"newswatch": run_newswatch, "trafilatura": run_trafilatura}
    for name, fn in runners.items():
        if args.only in (None, name):
            evaluate(name, fn, pages, truth, urls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

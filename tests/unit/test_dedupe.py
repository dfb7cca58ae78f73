from __future__ import annotations

import json
from pathlib import Path

from worker.articles.stories import (
    CANDIDATE_MAX_BITS,
    MIN_SHINGLE_OVERLAP,
    StoryText,
    article_text,
    band_keys,
    candidate,
    compare,
    distance,
    fingerprint,
    to_unsigned,
)

# Two unrelated articles whose fingerprints are within CANDIDATE_MAX_BITS: found by
# `bench/dedupe.py --close-pair` (fixed seed), kept as data.
CLOSE_UNRELATED = json.loads(
    (Path(__file__).parent.parent / "data" / "dedupe_close_unrelated.json").read_text()
)

STORY = [
    "Dock workers at the port of Rotterdam walked off the job on Tuesday morning, halting "
    "container traffic at Europe's largest port for the first time in more than a decade.",
    "The union representing crane operators said the strike would last at least 48 hours after "
    "talks with terminal operators over automation and staffing collapsed late on Monday.",
    "Shipping lines began diverting vessels to Antwerp and Hamburg, and freight forwarders "
    "warned that delays could ripple through supply chains already stretched by the season.",
    "\u201cWe have been patient for eighteen months,\u201d a union spokeswoman told reporters "
    "outside the main terminal gate. \u201cThe companies want to replace people with software "
    "and give nothing back.\u201d",
    "The port authority said emergency services, fuel deliveries and ferry traffic were not "
    "affected, and that it hoped both sides would return to the negotiating table before the "
    "weekend, when more than forty ships are due to arrive.",
    "Terminal operators said in a joint statement that they regretted the walkout and that "
    "their offer of a four percent pay rise and job guarantees until 2025 remained on the table.",
]
OTHER = [
    "Port workers in Antwerp said on Wednesday they would not handle ships diverted from "
    "Rotterdam, in solidarity with Dutch crane operators who began a strike on Tuesday.",
    "The Belgian union said its members would refuse overtime and any extra shifts, and that "
    "terminal operators should not try to profit from the dispute across the border.",
    "Shipping analysts said congestion was building at both ports and that several lines were "
    "considering Bremerhaven and Le Havre for cargo bound for central Europe this week.",
    "Exporters of perishable goods, including flowers and fruit, said containers were already "
    "waiting on the quays and warned of losses running into millions of euros a day.",
    "The European Commission said it was following the situation closely but that labour "
    "disputes were a matter for the member states and the social partners concerned.",
]


def source_a() -> str:
    return "\n\n".join(["Share on Facebook Share on Twitter", *STORY, "Sign up for our newsletter"])


def source_b() -> str:
    body = "\n\n".join(STORY[:-1])  # cut for length
    body = "ROTTERDAM (Reuters) - " + body.replace("walked off", "walked out of")
    return body + "\n\nReporting by Bart Meijer; Editing by Jan Harvey"


def source_c() -> str:
    body = (
        "\n\n".join(STORY).replace("on Tuesday morning", "on Tuesday").replace("48", "forty-eight")
    )
    return "Advertisement\n\n" + body + "\n\nRelated: Antwerp braces for diverted ships"


def test_same_story_on_three_sites_merges_pairwise() -> None:
    fps = [fingerprint(t()) for t in (source_a, source_b, source_c)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert candidate(fps[i], fps[j]), (i, j, distance(fps[i], fps[j]))
    texts = [t() for t in (source_a, source_b, source_c)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert compare("", texts[i], "", texts[j]).same_story, (i, j)


def test_different_story_on_same_topic_does_not_merge() -> None:
    other = fingerprint("\n\n".join(OTHER))
    for text in (source_a(), source_b(), source_c()):
        assert not candidate(fingerprint(text), other), distance(fingerprint(text), other)
        assert not compare("", text, "", "\n\n".join(OTHER)).same_story


def test_fingerprint_is_deterministic_signed_64_bit() -> None:
    fp = fingerprint(source_a())
    assert fp == fingerprint(source_a())
    assert -(2**63) <= fp < 2**63
    assert 0 <= to_unsigned(fp) < 2**64
    assert fingerprint(source_a().upper()) == fp  # case-insensitive


def test_empty_text_is_nobodys_duplicate() -> None:
    assert fingerprint("") == 0
    assert fingerprint("  ... !!! ") == 0
    assert not candidate(0, 0)
    assert not compare("", "", "", "").same_story


def test_band_keys_shared_by_close_fingerprints() -> None:
    fp = fingerprint(source_a())
    near = to_unsigned(fp) ^ 0b1011  # 3 bits apart, all in the first band
    keys = band_keys(fp)
    assert len(keys) == len(set(keys)) and all(isinstance(k, str) for k in keys)
    assert set(keys) & set(band_keys(near))
    assert candidate(fp, near - 2**64 if near >= 2**63 else near)
    flipped = to_unsigned(fp) ^ ((1 << (CANDIDATE_MAX_BITS + 1)) - 1)
    assert not candidate(fp, flipped)


def test_close_fingerprints_of_unrelated_articles_are_not_the_same_story() -> None:
    """Case 7: 64-bit fingerprints collide by chance; the shared shingles decide."""
    a, b = CLOSE_UNRELATED["a"], CLOSE_UNRELATED["b"]
    fp_a = fingerprint(article_text(a["title"], a["body"]))
    fp_b = fingerprint(article_text(b["title"], b["body"]))
    assert candidate(fp_a, fp_b), distance(fp_a, fp_b)  # the old code merged these
    ev = compare(a["title"], a["body"], b["title"], b["body"])
    assert ev.distance_bits == distance(fp_a, fp_b) <= CANDIDATE_MAX_BITS
    assert ev.shingle_overlap < 0.1 and ev.title_similarity < 0.5
    assert not ev.same_story
    assert "different stories" in str(ev) and f"{ev.distance_bits} bits" in str(ev)


TITLE = "Dock workers strike at Rotterdam port"


def story() -> str:
    return "\n\n".join(STORY)


def test_wire_edits_stay_the_same_story() -> None:
    """A changed headline, an added paragraph, a different lead, a trimmed ending."""
    edits = {
        "changed headline": ("Strike halts Europe's largest port", story()),
        "added paragraph": (
            TITLE,
            "\n\n".join(
                [
                    *STORY[:3],
                    "Local shops near the harbour said business had dropped sharply since "
                    "the morning, as trucks stood idle along the access roads.",
                    *STORY[3:],
                ]
            ),
        ),
        "different lead": (
            TITLE,
            "\n\n".join(
                [
                    "Europe's busiest container port came to a standstill this week as a "
                    "long-running row over automation finally boiled over.",
                    *STORY[1:],
                ]
            ),
        ),
        "trimmed ending": (TITLE, "\n\n".join(STORY[:4])),
    }
    for kind, (title, body) in edits.items():
        ev = compare(TITLE, story(), title, body)
        assert ev.same_story, (kind, ev)
        assert ev.shingle_overlap >= MIN_SHINGLE_OVERLAP, (kind, ev)
    assert compare(TITLE, story(), *edits["changed headline"]).title_similarity < 0.5


def test_evidence_of_a_merge_reads_as_a_reason() -> None:
    ev = compare(TITLE, source_a(), "Rotterdam dockers walk out", source_b())
    assert ev.same_story and ev.shingle_overlap >= MIN_SHINGLE_OVERLAP
    assert str(ev).startswith("same story: fingerprints ")


def test_story_text_decides_as_compare_does() -> None:
    """`StoryText.same_story` (the preview's many comparisons) agrees with `compare` on
    merges, close-but-unrelated pairs, different stories and texts without a body."""
    a, b = CLOSE_UNRELATED["a"], CLOSE_UNRELATED["b"]
    texts = [
        (TITLE, source_a()),
        ("Rotterdam dockers walk out", source_b()),
        ("Strike at the port", source_c()),
        ("Antwerp workers refuse diverted ships", "\n\n".join(OTHER)),
        (a["title"], a["body"]),
        (b["title"], b["body"]),
        (TITLE, ""),
        ("", ""),
    ]
    prepared = [StoryText(title, body) for title, body in texts]
    verdicts = set()
    for i, (title_a, body_a) in enumerate(texts):
        for j, (title_b, body_b) in enumerate(texts):
            if i == j:
                continue
            expected = (
                bool(body_a and body_b) and compare(title_a, body_a, title_b, body_b).same_story
            )
            assert prepared[i].same_story(prepared[j]) == expected, (i, j)
            verdicts.add(expected)
    assert verdicts == {True, False}

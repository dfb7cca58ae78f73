from __future__ import annotations

from worker.core.dedupe import (
    SAME_STORY_MAX_BITS,
    band_keys,
    distance,
    fingerprint,
    same_story,
    to_unsigned,
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
            assert same_story(fps[i], fps[j]), (i, j, distance(fps[i], fps[j]))


def test_different_story_on_same_topic_does_not_merge() -> None:
    other = fingerprint("\n\n".join(OTHER))
    for text in (source_a(), source_b(), source_c()):
        assert not same_story(fingerprint(text), other), distance(fingerprint(text), other)


def test_fingerprint_is_deterministic_signed_64_bit() -> None:
    fp = fingerprint(source_a())
    assert fp == fingerprint(source_a())
    assert -(2**63) <= fp < 2**63
    assert 0 <= to_unsigned(fp) < 2**64
    assert fingerprint(source_a().upper()) == fp  # case-insensitive


def test_empty_text_is_nobodys_duplicate() -> None:
    assert fingerprint("") == 0
    assert fingerprint("  ... !!! ") == 0
    assert not same_story(0, 0)


def test_band_keys_shared_by_close_fingerprints() -> None:
    fp = fingerprint(source_a())
    near = to_unsigned(fp) ^ 0b1011  # 3 bits apart, all in the first band
    keys = band_keys(fp)
    assert len(keys) == len(set(keys)) and all(isinstance(k, str) for k in keys)
    assert set(keys) & set(band_keys(near))
    assert same_story(fp, near - 2**64 if near >= 2**63 else near)
    flipped = to_unsigned(fp) ^ ((1 << (SAME_STORY_MAX_BITS + 1)) - 1)
    assert not same_story(fp, flipped)

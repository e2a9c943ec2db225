"""Real English text already on the machine (CPython's language reference), for parity, calibration and benchmarks.

No downloads: the text comes from ``pydoc_data.topics``, which ships with CPython. Selections are
deterministic, so every run and every machine with the same Python compares the same texts.
"""

from __future__ import annotations

import functools
import random
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")
_EXTRA = [
    "Ünïcödé façade naïve café: déjà vu, Straße, smørrebrød.",
    "東京は日本の首都です。 Tokyo is the capital of Japan.",
    "Emoji test 🚀🔥👍 with a zero\u200bwidth space and a tab\tinside.",
    "Привет, как дела? Это русский текст.",
    "مرحبا بالعالم — Arabic text mixed with English.",
    "   leading and trailing whitespace   ",
    "A",
    "",
]


@functools.lru_cache(maxsize=1)
def paragraphs() -> tuple[str, ...]:
    """Prose paragraphs (code blocks and headings dropped), whitespace-joined, in a fixed order."""
    from pydoc_data.topics import topics

    found: list[str] = []
    for key in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[key]):
            lines = block.splitlines()
            if not lines or any(line.startswith((" ", "\t")) for line in lines):
                continue  # code, grammar and indented examples
            text = " ".join(line.strip() for line in lines)
            if set(text) <= set("*=-~^ ") or len(text) < 40:
                continue
            letters = sum(ch.isalpha() or ch == " " for ch in text)
            if letters / len(text) > 0.85:
                found.append(text)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    """Sentences split from the prose paragraphs, at least three words long."""
    out = []
    for para in paragraphs():
        out.extend(s.strip() for s in _SENTENCE_END.split(para) if len(s.split()) >= 3)
    return tuple(out)


def queries(n: int, seed: int = 0) -> list[str]:
    """Query-like texts of 5-15 words (sentence prefixes)."""
    rng = random.Random(seed)
    pool = [s for s in sentences() if len(s.split()) >= 5]
    out = []
    while len(out) < n:
        words = rng.choice(pool).split()
        out.append(" ".join(words[: rng.randint(5, min(15, len(words)))]))
    return out


def passages(n: int, seed: int = 0, min_words: int = 60, max_words: int = 120) -> list[str]:
    """Passage-like texts of ``min_words``-``max_words`` words (consecutive sentences joined)."""
    rng = random.Random(seed)
    sents = sentences()
    out = []
    while len(out) < n:
        start = rng.randrange(len(sents))
        target = rng.randint(min_words, max_words)
        words: list[str] = []
        i = start
        while len(words) < target:
            words.extend(sents[i % len(sents)].split())
            i += 1
        out.append(" ".join(words[:target]))
    return out


def parity_texts(n: int = 200, long_words: int = 1200, seed: int = 0) -> list[str]:
    """Mixed-length real text for parity checks: short sentences, passages, texts of ``long_words`` words
    (longer than most models' max_seq_length) and a few hard cases (scripts, emoji, empty)."""
    n_long = max(2, n // 10)
    n_pass = n // 4
    texts = list(_EXTRA)
    texts += passages(n_long, seed=seed + 1, min_words=long_words, max_words=long_words + 200)
    texts += passages(n_pass, seed=seed + 2)
    texts += queries(max(0, n - len(texts)), seed=seed + 3)
    return texts[:n]


def held_out_split(texts: list[str]) -> tuple[list[str], list[str]]:
    """Split texts into (calibration, held-out) halves that never share a text."""
    return texts[0::2], texts[1::2]


def query_passage_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(query, passage) pairs, half related (the query is taken from the passage), half random."""
    rng = random.Random(seed)
    psg = passages(n, seed=seed + 5)
    pairs = []
    for i, passage in enumerate(psg):
        if i % 2 == 0:
            words = passage.split()
            start = rng.randrange(max(1, len(words) - 10))
            pairs.append((" ".join(words[start : start + rng.randint(5, 10)]), passage))
        else:
            pairs.append((queries(1, seed=seed + 100 + i)[0], passage))
    return pairs

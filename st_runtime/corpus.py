"""Real English text already on the machine, for parity, calibration, accuracy gates and benchmarks.

No downloads: the prose comes from ``pydoc_data.topics`` (CPython's language reference) and the retrieval task from
the docstrings of the standard library's own ``.py`` sources, both shipped with CPython. Selections are
deterministic, so every run and every machine with the same Python compares the same texts. ``SPLITS`` divides
them by source document into calibration, selection and gate text that share no 8-word sequence.
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


def _pool(split: str | None) -> tuple[str, ...]:
    return sentences() if split is None else split_sentences(split)


def queries(n: int, seed: int = 0, split: str | None = None) -> list[str]:
    """Query-like texts of 5-15 words (sentence prefixes), from all text or from one split."""
    rng = random.Random(seed)
    pool = [s for s in _pool(split) if len(s.split()) >= 5]
    out = []
    while len(out) < n:
        words = rng.choice(pool).split()
        out.append(" ".join(words[: rng.randint(5, min(15, len(words)))]))
    return out


def passages(n: int, seed: int = 0, min_words: int = 60, max_words: int = 120, split: str | None = None
             ) -> list[str]:
    """Passage-like texts of ``min_words``-``max_words`` words (consecutive sentences joined), optionally of one split."""
    rng = random.Random(seed)
    sents = _pool(split)
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


def query_passage_pairs(n: int, seed: int = 0, split: str | None = None) -> list[tuple[str, str]]:
    """(query, passage) pairs, half related (the query is taken from the passage), half random."""
    rng = random.Random(seed)
    psg = passages(n, seed=seed + 5, split=split)
    pairs = []
    for i, passage in enumerate(psg):
        if i % 2 == 0:
            words = passage.split()
            start = rng.randrange(max(1, len(words) - 10))
            pairs.append((" ".join(words[start : start + rng.randint(5, 10)]), passage))
        else:
            pairs.append((queries(1, seed=seed + 100 + i, split=split)[0], passage))
    return pairs


# --- Disjoint splits, by source document -------------------------------------------------------------------------
# Calibration fits the quantization ranges, selection chooses which layers stay fp32, gate is only reported. Each
# pydoc topic (and, for the retrieval task, each standard-library module) belongs to exactly one split, and a
# sentence of a later split that shares an 8-word sequence with an earlier split is dropped, so no figure in a
# manifest is measured on text that calibration or the layer search saw.
SPLITS = ("calibration", "selection", "gate")
NGRAM = 8
_WORD = re.compile(r"\w+")


def word_ngrams(text: str, n: int = NGRAM) -> set[str]:
    """The ``n``-word sequences of ``text`` (lower-cased words, punctuation ignored); the whole text if shorter."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _topic_paragraphs(text: str) -> list[str]:
    found = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or any(line.startswith((" ", "\t")) for line in lines):
            continue
        joined = " ".join(line.strip() for line in lines)
        if set(joined) <= set("*=-~^ ") or len(joined) < 40:
            continue
        if sum(ch.isalpha() or ch == " " for ch in joined) / len(joined) > 0.85:
            found.append(joined)
    return found


def _docstring_pairs() -> list[tuple[str, str, str]]:
    """(module, summary line, rest) of documented functions and classes in the standard library's own sources.

    Parsed with ``ast`` (nothing is imported); empty when this Python ships without its ``.py`` sources.
    """
    import ast
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    pairs = []
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        nodes = [n for n in tree.body if isinstance(n, defs)]
        nodes += [m for n in nodes if isinstance(n, ast.ClassDef) for m in n.body if isinstance(m, defs)]
        for node in nodes:
            doc = ast.get_docstring(node)
            parts = re.split(r"\n\s*\n", doc, maxsplit=1) if doc else []
            if len(parts) < 2:
                continue
            query, body = " ".join(parts[0].split()), " ".join(parts[1].split())
            if 4 <= len(query.split()) <= 30 and len(body.split()) >= 20:
                pairs.append((path.stem, query, " ".join(body.split()[:200])))
    return pairs


@functools.lru_cache(maxsize=1)
def _splits() -> dict[str, dict[str, list]]:
    """{split: {"sentences": [...], "pairs": [(query, document), ...]}}, disjoint across splits."""
    from pydoc_data.topics import topics

    # Topics, largest first, each to the split with the fewest sentences so far (deterministic, balanced).
    sized = []
    for key in sorted(topics):
        sents = [s.strip() for p in _topic_paragraphs(topics[key]) for s in _SENTENCE_END.split(p)
                 if len(s.split()) >= 3]
        sized.append((key, sents))
    sized.sort(key=lambda item: (-len(item[1]), item[0]))
    raw: dict[str, list[str]] = {name: [] for name in SPLITS}
    for _, sents in sized:
        raw[min(SPLITS, key=lambda name: (len(raw[name]), SPLITS.index(name)))].extend(sents)
    documented = _docstring_pairs()
    modules = sorted({module for module, _, _ in documented})
    pair_split = {module: ("selection", "gate")[i % 2] for i, module in enumerate(modules)}
    raw_pairs: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for module, query, body in documented:
        raw_pairs[pair_split[module]].append((query, body))

    owner: dict[str, str] = {}  # n-gram -> the split that holds it
    out: dict[str, dict[str, list]] = {name: {"sentences": [], "pairs": []} for name in SPLITS}

    def claim(split: str, *texts: str) -> bool:
        grams = set().union(*(word_ngrams(t) for t in texts))
        if any(owner.get(g, split) != split for g in grams):
            return False
        for g in grams:
            owner[g] = split
        return True

    for name in SPLITS:
        out[name]["sentences"] = [s for s in dict.fromkeys(raw[name]) if claim(name, s)]
    seen_queries: set[str] = set()
    for name in SPLITS:
        for query, body in raw_pairs[name]:
            if query.lower() not in seen_queries and claim(name, query, body):
                seen_queries.add(query.lower())
                out[name]["pairs"].append((query, body))
    return out


def split_sentences(split: str) -> tuple[str, ...]:
    """Sentences of one split ('calibration', 'selection' or 'gate')."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose from {SPLITS}.")
    return tuple(_splits()[split]["sentences"])


def retrieval_task(split: str, n_queries: int = 200, n_documents: int = 400, seed: int = 0
                   ) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """A labelled retrieval task from the standard library's docstrings: (queries, corpus, relevant_docs).

    A function's or class's docstring summary line is the query; the rest of that docstring is its one relevant
    document; the corpus also holds the other documents of the split (up to ``n_documents``). Only 'selection'
    and 'gate' have one; they come from different modules and share no 8-word sequence with each other or
    with any calibration text.
    """
    if split not in ("selection", "gate"):
        raise ValueError(f"The retrieval task exists for the 'selection' and 'gate' splits, not {split!r}.")
    pairs = list(_splits()[split]["pairs"])
    random.Random(seed).shuffle(pairs)
    pairs = pairs[: max(n_queries, n_documents)]
    corpus = {f"d{i:04d}": body for i, (_, body) in enumerate(pairs[:n_documents])}
    queries = {f"q{i:04d}": query for i, (query, _) in enumerate(pairs[: min(n_queries, n_documents)])}
    qrels = {qid: {f"d{qid[1:]}"} for qid in queries}
    return queries, corpus, qrels

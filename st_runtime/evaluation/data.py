"""Read evaluation files for ``st-runtime evaluate``: STS pairs, IR queries / corpus / qrels, rerank samples."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputValidationError

_ID_HEADERS = {"id", "_id", "qid", "query-id", "query_id", "cid", "corpus-id", "corpus_id", "doc_id", "docid", "pid"}


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"Evaluation file {str(path)!r} does not exist.")
    return open(path, encoding="utf-8", newline="")


def _jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open(path) as handle:
        if Path(path).suffix == ".json":
            data = json.load(handle)
            rows = data if isinstance(data, list) else list(data.values())
            yield from enumerate(rows, 1)
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputValidationError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None


def _is_json(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson")


def _rows(path: str | Path) -> list[list[str]]:
    """Rows of a CSV (by extension) or TSV file; TSV fields are split on tabs only, quotes kept as text."""
    with _open(path) as handle:
        if Path(path).suffix.lower() == ".csv":
            rows = list(csv.reader(handle))
        else:
            rows = [line.rstrip("\r\n").split("\t") for line in handle]
    return [row for row in rows if any(field.strip() for field in row)]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """(sentences1, sentences2, scores) from a TSV / CSV / JSONL file.

    Columns ``sentence1``, ``sentence2``, ``score`` (or ``label``) by header name, else the first three
    columns. Scores above 1 (e.g. STS-B's 0-5) are divided by 5, or by the largest score if that is above 5,
    so they read as ST's 0-1 labels; Pearson and Spearman do not change under this scaling.
    """
    s1, s2, scores = [], [], []
    if _is_json(path):
        for number, row in _jsonl(path):
            try:
                s1.append(str(row["sentence1"]))
                s2.append(str(row["sentence2"]))
                scores.append(float(row["score"] if "score" in row else row["label"]))
            except (KeyError, TypeError, ValueError):
                raise InputValidationError(f"{path}:{number}: needs sentence1, sentence2 and a numeric score.") \
                    from None
    else:
        rows = _rows(path)
        columns = (0, 1, 2)
        if rows and (len(rows[0]) < 3 or not _is_number(rows[0][2])):
            header = [field.strip().lower() for field in rows.pop(0)]
            if {"sentence1", "sentence2"} <= set(header):
                score = next((c for c in ("score", "label", "similarity", "gold") if c in header), None)
                if score is None:
                    raise InputValidationError(f"{path}: the header has no score / label column: {header}.")
                columns = (header.index("sentence1"), header.index("sentence2"), header.index(score))
        for number, row in enumerate(rows, 1):
            try:
                s1.append(row[columns[0]])
                s2.append(row[columns[1]])
                scores.append(float(row[columns[2]]))
            except (IndexError, ValueError):
                raise InputValidationError(f"{path}: data row {number} needs sentence1, sentence2 and a numeric "
                                           f"score, got {row!r}.") from None
    if len(scores) < 2:
        raise InputValidationError(f"{path}: needs at least two scored pairs, found {len(scores)}.")
    top = max(scores)
    if top > 1:
        scale = 5.0 if top <= 5 else top
        scores = [s / scale for s in scores]
    return s1, s2, scores


def read_texts(path: str | Path) -> dict[str, str]:
    """id -> text from JSONL (``_id``/``id`` and ``text``, ``title`` prepended when present) or TSV id<TAB>text."""
    texts: dict[str, str] = {}
    if _is_json(path):
        for number, row in _jsonl(path):
            key = row.get("_id", row.get("id")) if isinstance(row, dict) else None
            if key is None or "text" not in row:
                raise InputValidationError(f"{path}:{number}: needs an '_id' (or 'id') and a 'text'.")
            texts[str(key)] = (str(row.get("title") or "") + " " + str(row["text"])).strip()
        return texts
    rows = _rows(path)
    if rows and rows[0][0].strip().lower() in _ID_HEADERS:
        rows.pop(0)
    for number, row in enumerate(rows, 1):
        if len(row) < 2:
            raise InputValidationError(f"{path}: data row {number} needs id<TAB>text, got {row!r}.")
        texts[row[0].strip()] = "\t".join(row[1:])
    return texts


def read_qrels(path: str | Path) -> dict[str, set[str]]:
    """qid -> set of relevant cids from JSONL (``query-id``/``qid``, ``corpus-id``/``cid``, optional ``score``)
    or TSV ``qid<TAB>cid[<TAB>score]`` (TREC's ``qid 0 cid score`` too). Scores <= 0 are not relevant."""
    relevant: dict[str, set[str]] = {}

    def add(qid: Any, cid: Any, score: Any = 1) -> None:
        if float(score) > 0:
            relevant.setdefault(str(qid).strip(), set()).add(str(cid).strip())

    if _is_json(path):
        for number, row in _jsonl(path):
            qid = next((row[k] for k in ("query-id", "query_id", "qid") if k in row), None)
            cid = next((row[k] for k in ("corpus-id", "corpus_id", "cid", "doc_id") if k in row), None)
            if qid is None or cid is None:
                raise InputValidationError(f"{path}:{number}: needs a query id and a corpus id.")
            add(qid, cid, row.get("score", 1))
        return relevant
    rows = _rows(path)
    if rows and len(rows[0]) == 1:
        rows = [row[0].split() for row in rows]  # whitespace-separated (TREC)
    if rows and (rows[0][0].strip().lower() in _ID_HEADERS or (len(rows[0]) > 2 and not _is_number(rows[0][-1]))):
        rows.pop(0)
    for number, row in enumerate(rows, 1):
        try:
            if len(row) == 4:  # TREC: qid iteration cid relevance
                add(row[0], row[2], row[3])
            elif len(row) in (2, 3):
                add(row[0], row[1], row[2] if len(row) == 3 else 1)
            else:
                raise ValueError
        except ValueError:
            raise InputValidationError(f"{path}: qrels row {number} must be qid<TAB>cid[<TAB>score], got {row!r}.") \
                from None
    return relevant


def read_rerank(path: str | Path) -> list[dict[str, Any]]:
    """Samples ``{"query", "positive": [...], "negative": [...]}`` (or ``"documents"``) from JSONL / JSON."""
    samples = []
    for number, row in _jsonl(path):
        if not isinstance(row, dict) or "query" not in row or "positive" not in row:
            raise InputValidationError(f"{path}:{number}: needs 'query', 'positive' and 'negative' or 'documents'.")
        samples.append(row)
    if not samples:
        raise InputValidationError(f"{path}: no samples.")
    return samples

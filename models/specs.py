"""What each test model is: architecture, head and Sentence Transformers settings. Pure data, no torch import."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

REAL_MINILM = "minilm-real"  # not built: the packaged real all-MiniLM-L6-v2 folder


@dataclass(frozen=True)
class Spec:
    """One tiny model. ``kind`` is "bi" (SentenceTransformer) or "ce" (CrossEncoder)."""

    name: str
    arch: str  # key of builder.ARCHS: bert, distilbert, mpnet, xlmr, deberta, t5, modernbert, qwen3
    description: str
    kind: str = "bi"
    pooling: str = "mean"
    include_prompt: bool = True
    dense: tuple[int, bool, str] | None = None  # (out_features, bias, "tanh" | "identity")
    normalize: bool = False
    prompts: tuple[tuple[str, str], ...] = ()
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    max_seq_length: int = 128
    max_position_embeddings: int = 512
    labels: tuple[str, ...] = ()  # cross-encoders: id2label names; empty means one unnamed score
    real_backbone: bool = False  # cross-encoders: real MiniLM weights instead of a random tiny backbone
    init_std: float = 0.02  # initializer_range (ce-minilm: std of its random head); see WIDE_INIT
    seed: int = 0
    trust_remote_code: bool = False  # modeling code saved in the folder, loaded through config.json's auto_map

    @property
    def num_labels(self) -> int:
        return max(1, len(self.labels))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# With the usual 0.02 init a 2-layer random encoder attends almost uniformly, so its CLS vector and a
# cross-encoder's score barely depend on the text (cosine ~1.0 between any two texts, scores equal to 1e-5):
# those models are drawn at std 0.3. Mean-pooled models keep 0.02, which int8 static quantization tolerates
# (at 0.3 the variant gates refuse it: top-10 overlap ~0.89).
WIDE_INIT = 0.3


def _bi(name: str, arch: str, description: str, **kw) -> Spec:
    return Spec(name=name, arch=arch, description=description, **kw)


def _ce(name: str, arch: str, description: str, **kw) -> Spec:
    return Spec(name=name, arch=arch, description=description, kind="ce", init_std=WIDE_INIT, **kw)


_ALL = [
    _bi("bert-mean", "bert", "BERT, mean pooling, Normalize", normalize=True),
    _bi("bert-cls-dense", "bert", "BERT, CLS pooling, Dense 32->24 tanh, no Normalize", pooling="cls",
        dense=(24, True, "tanh"), init_std=WIDE_INIT),
    _bi("bert-max", "bert", "BERT, max pooling", pooling="max"),
    _bi("bert-mean-sqrt", "bert", "BERT, mean_sqrt_len_tokens pooling", pooling="mean_sqrt_len_tokens"),
    _bi("bert-weightedmean", "bert", "BERT, weightedmean pooling", pooling="weightedmean"),
    _bi("bert-prompts", "bert", "BERT mean with query/document prompts, dot similarity",
        prompts=(("query", "query: "), ("document", "passage: ")), similarity_fn_name="dot"),
    _bi("bert-noprompt-pool", "bert", "BERT mean, prompt tokens excluded from pooling", include_prompt=False,
        prompts=(("query", "Represent this question for retrieval: "), ("document", ""))),
    _bi("bert-lasttoken", "bert", "BERT, lasttoken pooling (right padding)", pooling="lasttoken"),
    _bi("mpnet-mean", "mpnet", "MPNet, mean pooling, Normalize", normalize=True),
    _bi("distilbert-cls", "distilbert", "DistilBERT, CLS pooling", pooling="cls", init_std=WIDE_INIT),
    _bi("xlmr-mean", "xlmr", "XLM-RoBERTa (Unigram tokenizer, no token_type_ids), mean pooling"),
    _bi("deberta-mean", "deberta", "DeBERTa-v2 (relative attention, position buckets), mean pooling"),
    _bi("t5-mean-dense", "t5", "T5 encoder as sentence-t5: mean, Dense without bias (identity), Normalize",
        dense=(32, False, "identity"), normalize=True),
    _bi("modernbert-mean", "modernbert", "ModernBERT (global + local attention), mean, 1024 tokens",
        max_seq_length=1024, max_position_embeddings=1024),
    _bi("qwen3-lasttoken", "qwen3", "Qwen3 decoder, lasttoken pooling, left padding, EOS appended, Normalize",
        pooling="lasttoken", normalize=True, prompts=(("query", "Instruct: find passages\nQuery: "),)),
    _bi("custom-code-mean", "custom", "Custom-code encoder (models/remote_code, auto_map + trust_remote_code), mean",
        trust_remote_code=True),
    _bi("bert-long", "bert", "BERT with 1024 positions, max_seq_length 1024", max_seq_length=1024,
        max_position_embeddings=1024),
    # Benchmarks only (issue #11's 12-layer base model; random weights run at the real speed), not in the test lists.
    _bi("bert-base", "bert-base", "BERT-base shape (12 x 768, 110M parameters), real uncased tokenizer, mean pooling, "
        "Normalize, max_seq_length 384 (like all-mpnet-base-v2)", normalize=True, max_seq_length=384),
    # Past the 2 GiB protobuf limit (issue #22 item 1), slow tests and benchmarks only, not in the test lists.
    _bi("big-random-2gb", "xlmr-2gb", "random model past 2 GB fp32: XLM-R-large width (1024), 4 layers, 500k-row "
        "embedding (564M parameters, 2.26 GB), XLM-R tokenizer, mean, Normalize (issue #22 item 1, external data)",
        normalize=True),
    _bi("big-xlmr-large", "xlmr-large", "random XLM-R-large shape (24 x 1024, vocab 250002: 560M parameters, "
        "2.24 GB fp32), XLM-R tokenizer, mean, Normalize", normalize=True),
    _ce("ce-bert", "bert", "BERT cross-encoder, one score"),
    _ce("ce-xlmr", "xlmr", "XLM-RoBERTa cross-encoder, one score"),
    _ce("ce-bert-3labels", "bert", "BERT cross-encoder, 3 NLI labels",
        labels=("contradiction", "entailment", "neutral")),
    _ce("ce-minilm", "bert", "Real MiniLM-L6 backbone, seeded random head, one score, max_length 256",
        real_backbone=True, max_seq_length=256),
    _ce("ce-bert-129", "bert", "BERT cross-encoder, one score, max_length 129 (an even pair budget of 126 tokens)",
        max_seq_length=129),
]

SPECS: dict[str, Spec] = {spec.name: spec for spec in _ALL}

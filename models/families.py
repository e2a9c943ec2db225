"""Tiny random models of the other Sentence Transformers families (sparse, static, multi-vector). Pure data here;
``families_builder.py`` builds them. Their own fingerprint sources, so adding one does not rebuild the others."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class FamilySpec:
    """One tiny model of a family other than SentenceTransformer / CrossEncoder.

    ``family``: "splade" (MLM Transformer + SpladePooling), "splade-router" (inference-free: SparseStaticEmbedding
    queries, SPLADE documents), "csr" (Transformer + Pooling + SparseAutoEncoder), "static" (StaticEmbedding
    [+ Normalize]), "multivec" (Transformer + Dense + MultiVectorMask [+ Normalize]), "router" (SentenceTransformer
    whose Router sends queries and documents through two different BERTs), "splade-2route" (SparseEncoder Router with
    an MLM transformer per route).
    """

    name: str
    family: str
    description: str
    pooling: str = "max"  # SpladePooling strategy, or Pooling mode for csr
    activation: str = "relu"  # SpladePooling activation_function
    max_active_dims: int | None = None
    prompts: tuple[tuple[str, str], ...] = ()
    max_seq_length: int = 64
    hidden_size: int = 32
    sae_hidden: int = 256  # csr: SparseAutoEncoder hidden_dim
    sae_k: int = 16
    static_dim: int = 48
    normalize: bool = False
    dense_out: int = 24  # multivec: projection size
    skiplist: tuple[str, ...] = ()
    query_length: int | None = None
    document_length: int | None = None
    query_expansion: bool = False
    init_std: float = 0.1
    seed: int = 0
    query_max_seq_length: int | None = None  # router: the query route's own limit (documents: max_seq_length)
    route_names: tuple[str, str] = ("query", "document")  # router: other names need route_mappings
    shared_tail: bool = False  # router: Pooling + Normalize after the Router instead of inside each route

    @property
    def kind(self) -> str:
        return self.family

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_ALL = [
    FamilySpec("splade-max", "splade", "BERT MLM (real uncased vocab), SpladePooling max + relu",
               prompts=(("query", "query: "), ("document", ""))),
    FamilySpec("splade-sum", "splade", "BERT MLM, SpladePooling sum + log1p_relu, max_active_dims 32",
               pooling="sum", activation="log1p_relu", max_active_dims=32),
    FamilySpec("splade-router", "splade-router", "Inference-free SPLADE: Router(query=SparseStaticEmbedding idf, "
               "document=BERT MLM + SpladePooling max)"),
    FamilySpec("csr-mean", "csr", "BERT, mean Pooling, SparseAutoEncoder 32->256 k=16", pooling="mean"),
    FamilySpec("static-normalize", "static", "StaticEmbedding (real uncased vocab, 48-d) + Normalize", normalize=True,
               prompts=(("query", "query: "),)),
    FamilySpec("static-plain", "static", "StaticEmbedding (real uncased vocab, 48-d), no Normalize"),
    FamilySpec("multivec-dense", "multivec", "BERT, Dense 32->24 on tokens, MultiVectorMask (punctuation skiplist "
               "on documents), Normalize; [Q]/[D] prompts", skiplist=(".", ",", "!", "?"), normalize=True,
               prompts=(("query", "[Q] "), ("document", "[D] "))),
    FamilySpec("multivec-lengths", "multivec", "BERT, Dense 32->16, MultiVectorMask without skiplist, no Normalize; "
               "query_length 12, document_length 40", dense_out=16, query_length=12, document_length=40),
    FamilySpec("router-dense", "router", "Router.for_query_document: query [BERT A, mean Pooling, Normalize] at "
               "max_seq_length 24, document [BERT B, cls Pooling, Normalize] at 48; 'query: ' prompt",
               pooling="cls", max_seq_length=48, query_max_seq_length=24, prompts=(("query", "query: "),)),
    FamilySpec("router-mapped", "router", "Router(q=[BERT A], d=[BERT B]) with route_mappings query->q, "
               "document->d, default d; shared mean Pooling + Normalize after the Router", pooling="mean",
               route_names=("q", "d"), shared_tail=True),
    FamilySpec("splade-2route", "splade-2route", "SparseEncoder Router: query [BERT MLM A + SpladePooling max], "
               "document [BERT MLM B + SpladePooling max]", max_seq_length=48, query_max_seq_length=24),
]

FAMILY_SPECS: dict[str, FamilySpec] = {spec.name: spec for spec in _ALL}


def names_of(family: str) -> list[str]:
    return [name for name, spec in FAMILY_SPECS.items() if spec.family == family]

"""Build one FamilySpec into a folder: a tiny seeded model saved by its sentence-transformers 6 class."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import transformers

from . import tokenizers as toks
from .builder import quiet
from .families import FamilySpec


def _bert_config(tok, spec: FamilySpec) -> transformers.BertConfig:
    return transformers.BertConfig(hidden_size=spec.hidden_size, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=2 * spec.hidden_size, max_position_embeddings=512,
                                   pad_token_id=tok.pad_token_id, vocab_size=len(tok),
                                   initializer_range=spec.init_std)


def _mlm(tok, spec: FamilySpec, scratch: Path) -> Path:
    """A random BertForMaskedLM whose output bias is negative, so most vocabulary entries stay inactive (as in a
    trained SPLADE model) and few logits sit near the ReLU's zero."""
    torch.manual_seed(spec.seed)
    model = transformers.BertForMaskedLM(_bert_config(tok, spec))
    with torch.no_grad():
        bias = model.cls.predictions.decoder.bias if model.cls.predictions.decoder.bias is not None else \
            model.cls.predictions.bias
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(spec.seed + 7)) * 0.3 - 2.0)
    model.save_pretrained(scratch)
    tok.save_pretrained(scratch)
    return scratch


def _encoder(tok, spec: FamilySpec, scratch: Path) -> Path:
    torch.manual_seed(spec.seed)
    transformers.BertModel(_bert_config(tok, spec)).save_pretrained(scratch)
    tok.save_pretrained(scratch)
    return scratch


def _splade_modules(tok, spec: FamilySpec, scratch: Path) -> list:
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    transformer = Transformer(str(_mlm(tok, spec, scratch)), transformer_task="fill-mask",
                              max_seq_length=spec.max_seq_length)
    return [transformer, SpladePooling(pooling_strategy=spec.pooling, activation_function=spec.activation)]


def _sparse_encoder(spec: FamilySpec, tok, scratch: Path):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.sparse_encoder.modules import Router, SparseAutoEncoder, SparseStaticEmbedding, Transformer

    if spec.family == "splade":
        modules = _splade_modules(tok, spec, scratch)
    elif spec.family == "splade-router":
        idf = torch.rand(len(tok), generator=torch.Generator().manual_seed(spec.seed + 3)) * 5
        query = SparseStaticEmbedding(tokenizer=tok, weight=idf, frozen=True)
        query.max_seq_length = spec.max_seq_length
        modules = [Router.for_query_document(query_modules=[query],
                                             document_modules=_splade_modules(tok, spec, scratch))]
    else:  # csr
        transformer = Transformer(str(_encoder(tok, spec, scratch)), max_seq_length=spec.max_seq_length)
        torch.manual_seed(spec.seed + 5)
        sae = SparseAutoEncoder(input_dim=spec.hidden_size, hidden_dim=spec.sae_hidden, k=spec.sae_k, k_aux=32)
        with torch.no_grad():
            sae.pre_bias.normal_(0, 0.1)
            sae.latent_bias.normal_(0, 0.1)
        modules = [transformer, Pooling(spec.hidden_size, pooling_mode=spec.pooling), sae]
    return SparseEncoder(modules=modules, device="cpu", prompts=dict(spec.prompts) or None,
                         max_active_dims=spec.max_active_dims, similarity_fn_name="dot")


def _static(spec: FamilySpec, tok):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

    weights = torch.randn(len(tok), spec.static_dim, generator=torch.Generator().manual_seed(spec.seed + 11))
    modules = [StaticEmbedding(tok, embedding_weights=weights)]
    if spec.normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu", prompts=dict(spec.prompts) or None)


def _multivec(spec: FamilySpec, tok, scratch: Path):
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Transformer

    transformer = Transformer(str(_encoder(tok, spec, scratch)), max_seq_length=spec.max_seq_length,
                              query_length=spec.query_length, document_length=spec.document_length)
    torch.manual_seed(spec.seed + 13)
    modules = [transformer,
               Dense(spec.hidden_size, spec.dense_out, bias=False, activation_function=torch.nn.Identity(),
                     module_input_name="token_embeddings", module_output_name="token_embeddings"),
               MultiVectorMask(skiplist_words=list(spec.skiplist))]
    if spec.normalize:
        modules.append(Normalize(module_input_name="token_embeddings"))
    return MultiVectorEncoder(modules=modules, device="cpu", prompts=dict(spec.prompts) or None)


def _router(spec: FamilySpec, tok, scratch: Path):
    """A SentenceTransformer whose Router has a different BERT per route (seeds differ, so do the results)."""
    import dataclasses

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Router, Transformer

    q_spec = dataclasses.replace(spec, seed=spec.seed + 101)
    query = Transformer(str(_encoder(tok, q_spec, scratch / "query")),
                        max_seq_length=spec.query_max_seq_length or spec.max_seq_length)
    document = Transformer(str(_encoder(tok, spec, scratch / "document")), max_seq_length=spec.max_seq_length)
    q_name, d_name = spec.route_names
    if spec.shared_tail:
        routes = {q_name: [query], d_name: [document]}
        tail = [Pooling(spec.hidden_size, pooling_mode=spec.pooling), Normalize()]
    else:
        routes = {q_name: [query, Pooling(spec.hidden_size, pooling_mode="mean"), Normalize()],
                  d_name: [document, Pooling(spec.hidden_size, pooling_mode=spec.pooling), Normalize()]}
        tail = []
    mappings = None if (q_name, d_name) == ("query", "document") else {("query", None): q_name,
                                                                         ("document", None): d_name}
    router = Router(routes, default_route=d_name, route_mappings=mappings)
    return SentenceTransformer(modules=[router, *tail], device="cpu", prompts=dict(spec.prompts) or None)


def _splade_two_routes(spec: FamilySpec, tok, scratch: Path):
    import dataclasses

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router

    q_spec = dataclasses.replace(spec, seed=spec.seed + 101, max_seq_length=spec.query_max_seq_length or
                                 spec.max_seq_length)
    router = Router.for_query_document(query_modules=_splade_modules(tok, q_spec, scratch / "query"),
                                       document_modules=_splade_modules(tok, spec, scratch / "document"))
    return SparseEncoder(modules=[router], device="cpu", similarity_fn_name="dot")


def build_family_into(spec: FamilySpec, out: Path, scratch: Path) -> None:
    """Write ``spec`` as a Sentence Transformers folder at ``out``."""
    with quiet():
        tok = toks.bert()
        tok.model_max_length = 512
        if spec.family in ("splade", "splade-router", "csr"):
            model = _sparse_encoder(spec, tok, scratch)
        elif spec.family == "static":
            model = _static(spec, tok)
        elif spec.family == "multivec":
            model = _multivec(spec, tok, scratch)
        elif spec.family == "router":
            model = _router(spec, tok, scratch)
        elif spec.family == "splade-2route":
            model = _splade_two_routes(spec, tok, scratch)
        else:
            raise KeyError(f"unknown family {spec.family!r}")
        model.save(str(out))
    shutil.rmtree(scratch, ignore_errors=True)

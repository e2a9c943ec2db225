"""``EmbeddingSimilarityEvaluator``: Pearson / Spearman of embedding similarities against gold scores."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..errors import InputValidationError
from ..quantization import check_precision
from ..similarity import PAIRWISE, resolve_similarity_name
from .base import BaseEvaluator, epoch_text
from .metrics import pearson, spearman

logger = logging.getLogger(__name__)


class EmbeddingSimilarityEvaluator(BaseEvaluator):
    """Torch-free twin of ``sentence_transformers.evaluation.EmbeddingSimilarityEvaluator``.

    Embeds ``sentences1`` and ``sentences2``, scores each pair with every similarity function in
    ``similarity_fn_names`` (default: the model's own) and returns ``pearson_<fn>`` and ``spearman_<fn>``
    (plus ``pearson_max`` / ``spearman_max`` with several functions), prefixed with ``name + '_'`` when a
    name is given. ``primary_metric`` is the Spearman of ``main_similarity`` (else of the only function,
    else ``spearman_max``). ``precision`` quantizes the (normalized) embeddings first, as ST does.

    Example::

        from st_runtime import SentenceTransformer
        from st_runtime.evaluation import EmbeddingSimilarityEvaluator

        evaluator = EmbeddingSimilarityEvaluator(s1, s2, gold, name="sts-dev")
        results = evaluator(SentenceTransformer("bundles/all-MiniLM-L6-v2"))
        results[evaluator.primary_metric]   # "sts-dev_spearman_cosine"
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        batch_size: int = 16,
        main_similarity: Any = None,
        similarity_fn_names: Sequence[str] | None = None,
        name: str = "",
        show_progress_bar: bool = False,
        write_csv: bool = True,
        precision: str | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not (len(sentences1) == len(sentences2) == len(scores)):
            raise InputValidationError(
                f"sentences1, sentences2 and scores must have the same length, got "
                f"{len(sentences1)}, {len(sentences2)} and {len(scores)}."
            )
        if len(scores) < 2:
            raise InputValidationError("Correlations need at least two scored pairs.")
        if precision is not None:
            check_precision(precision)
        self.sentences1 = list(sentences1)
        self.sentences2 = list(sentences2)
        self.scores = [float(s) for s in scores]
        self.batch_size = batch_size
        self.main_similarity = resolve_similarity_name(main_similarity) if main_similarity else None
        self.similarity_fn_names = [resolve_similarity_name(n) for n in similarity_fn_names or []]
        if not self.similarity_fn_names and self.main_similarity is not None:
            self.similarity_fn_names = [self.main_similarity]
        self.name = name
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.precision = precision
        self.truncate_dim = truncate_dim
        self.csv_file = ("similarity_evaluation" + (f"_{name}" if name else "")
                         + (f"_{precision}" if precision else "") + "_results.csv")

    def embed_inputs(self, model: Any, sentences: list[str]) -> np.ndarray:
        return model.encode(
            sentences,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress_bar,
            convert_to_numpy=True,
            precision=self.precision or "float32",
            normalize_embeddings=bool(self.precision),
            truncate_dim=self.truncate_dim,
        )

    def _embeddings(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.precision in ("int8", "uint8"):
            # One calibration over both sides, so a sentence gets the same quantized embedding on either side.
            both = self.embed_inputs(model, [*self.sentences1, *self.sentences2])
            emb1, emb2 = both[: len(self.sentences1)], both[len(self.sentences1) :]
        else:
            emb1 = self.embed_inputs(model, self.sentences1)
            emb2 = self.embed_inputs(model, self.sentences2)
        if self.precision == "binary":
            emb1, emb2 = emb1.astype(np.int16) + 128, emb2.astype(np.int16) + 128
        if self.precision in ("binary", "ubinary"):
            emb1 = np.unpackbits(emb1.astype(np.uint8), axis=1)
            emb2 = np.unpackbits(emb2.astype(np.uint8), axis=1)
        if self.precision in ("int8", "uint8", "binary", "ubinary"):
            emb1, emb2 = emb1.astype(np.float32), emb2.astype(np.float32)
        return emb1, emb2

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        truncated = f" (truncated to {self.truncate_dim})" if self.truncate_dim is not None else ""
        logger.info(f"EmbeddingSimilarityEvaluator: Evaluating the model on the {self.name} dataset"
                    f"{epoch_text(epoch, steps)}{truncated}:")
        emb1, emb2 = self._embeddings(model)
        fn_names = self.similarity_fn_names or [resolve_similarity_name(model.similarity_fn_name)]

        metrics: dict[str, float] = {}
        for fn_name in fn_names:
            predicted = np.asarray(PAIRWISE[fn_name](emb1, emb2))
            metrics[f"pearson_{fn_name}"] = pearson(self.scores, predicted)
            metrics[f"spearman_{fn_name}"] = spearman(self.scores, predicted)
            logger.info(f"{fn_name.capitalize()}-Similarity:\tPearson: {metrics[f'pearson_{fn_name}']:.4f}\t"
                        f"Spearman: {metrics[f'spearman_{fn_name}']:.4f}")

        if self.write_csv:
            headers = ["epoch", "steps"] + [f"{fn}_{m}" for fn in fn_names for m in ("pearson", "spearman")]
            row = [epoch, steps] + [metrics[f"{m}_{fn}"] for fn in fn_names for m in ("pearson", "spearman")]
            self.append_csv(output_path, self.csv_file, headers, row)

        if len(fn_names) > 1:
            metrics["pearson_max"] = max(metrics[f"pearson_{fn}"] for fn in fn_names)
            metrics["spearman_max"] = max(metrics[f"spearman_{fn}"] for fn in fn_names)
        if self.main_similarity:
            self.primary_metric = f"spearman_{self.main_similarity}"
        else:
            self.primary_metric = "spearman_max" if len(fn_names) > 1 else f"spearman_{fn_names[0]}"
        return self.prefix_name_to_metrics(metrics, self.name)

    @property
    def description(self) -> str:
        return "Semantic Similarity"

    def get_config_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("truncate_dim", "precision") if getattr(self, key) is not None}

"""numpy counterparts of ``sentence_transformers.util`` (same names, same return structures).

sentence-transformers' util also holds torch, Hub, training and logging helpers; those are listed in
``NOT_PROVIDED`` with the reason, and reading one raises ``NotProvidedError`` (an ``AttributeError``, so
``hasattr`` stays False) naming it.
"""

from __future__ import annotations

from typing import Any

from .errors import NotProvidedError
from .quantization import quantize_embeddings
from .retrieval import community_detection, paraphrase_mining, paraphrase_mining_embeddings, semantic_search
from .similarity import (
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    normalize_embeddings,
    pairwise_angle_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
    truncate_embeddings,
)

pytorch_cos_sim = cos_sim  # sentence-transformers' old name


def information_retrieval(*args: Any, **kwargs: Any) -> list[list[dict[str, int | float]]]:
    """sentence-transformers' old name of ``semantic_search``."""
    return semantic_search(*args, **kwargs)


_TORCH = "it works on torch tensors or torch.distributed, which st-runtime does not use"
_HUB = "it reads the Hugging Face Hub or downloads files; st-runtime opens local folders only"
_TRAIN = "it belongs to training with sentence-transformers (datasets, losses, hard-negative mining)"
_INTERNAL = "it is an internal helper of sentence-transformers (imports, logging, decorators), not an embedding tool"
_MULTI = "multi-vector (late interaction) scoring is not part of this st-runtime's util"
_SPARSE = "sparse-embedding helpers are not part of this st-runtime's util"

NOT_PROVIDED: dict[str, str] = {
    "all_gather": _TORCH, "all_gather_padded": _TORCH, "all_gather_with_grad": _TORCH, "get_rank": _TORCH,
    "get_world_size": _TORCH, "get_device_name": _TORCH, "is_dist_initialized": _TORCH, "batch_to_device": _TORCH,
    "cat_padded_token_embeddings": _TORCH, "stack_padded_token_embeddings": _TORCH,
    "repad_flattened_features": _TORCH,
    "is_sentence_transformer_model": _HUB, "load_dir_path": _HUB, "load_file_path": _HUB, "http_get": _HUB,
    "check_teacher_targets": _TRAIN, "mine_hard_negatives": _TRAIN, "resolve_ids": _TRAIN,
    "disable_datasets_caching": _TRAIN, "is_training_available": _TRAIN, "is_datasets_available": _TRAIN,
    "is_accelerate_available": _TRAIN, "append_to_last_row": _TRAIN,
    "save_to_hub_args_decorator": _INTERNAL, "check_package_availability": _INTERNAL,
    "check_version_requirements": _INTERNAL, "install_logger": _INTERNAL, "fullname": _INTERNAL,
    "similarity_fct_name": _INTERNAL, "import_from_string": _INTERNAL, "import_module_class": _INTERNAL,
    "disable_logging": _INTERNAL, "disabled_tqdm": _INTERNAL, "LoggingHandler": _INTERNAL,
    "ORIGINAL_TRANSFORMER_MODELS": _INTERNAL, "SimilarityFunction": _INTERNAL,
    "maxsim": _MULTI, "maxsim_pairwise": _MULTI, "mean_maxsim": _MULTI, "mean_maxsim_pairwise": _MULTI,
    "to_scipy_coo": _SPARSE, "compute_count_vector": _SPARSE, "select_max_active_dims": _SPARSE,
}


def __getattr__(name: str) -> Any:
    if name in NOT_PROVIDED:
        raise NotProvidedError(f"st_runtime.util.{name} is not provided: {NOT_PROVIDED[name]}.")
    raise AttributeError(f"module 'st_runtime.util' has no attribute {name!r}")


__all__ = [
    "community_detection",
    "cos_sim",
    "dot_score",
    "euclidean_sim",
    "information_retrieval",
    "manhattan_sim",
    "normalize_embeddings",
    "pairwise_angle_sim",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "pytorch_cos_sim",
    "quantize_embeddings",
    "semantic_search",
    "truncate_embeddings",
]

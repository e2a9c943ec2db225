"""checked_similarity_fn_name: the sparse and multi-vector encoders' similarity setting check (no model needed)."""

import enum

import pytest

from st_runtime.errors import InputValidationError
from st_runtime.manifest import MULTI_VECTOR_SIMILARITY_FNS, SPARSE_SIMILARITY_FNS
from st_runtime.similarity import checked_similarity_fn_name
from st_runtime.sparse_encoder import _SIMILARITY_ALIASES, _SIMILARITY_HINTS


class _Fn(enum.Enum):
    DOT = "dot_score"


def test_sparse_names_aliases_and_hint():
    def check(value):
        return checked_similarity_fn_name(value, SPARSE_SIMILARITY_FNS, "SparseEncoder", _SIMILARITY_ALIASES,
                                          _SIMILARITY_HINTS)

    assert check("cos_sim") == "cosine"
    assert check(_Fn.DOT) == "dot"
    with pytest.raises(InputValidationError) as info:
        check("maxsim")
    assert str(info.value) == (f"SparseEncoder supports similarity_fn_name in {SPARSE_SIMILARITY_FNS}, got 'maxsim'."
                               " Use st_runtime.MultiVectorEncoder for MaxSim scoring.")


def test_multi_vector_names_take_no_alias():
    assert checked_similarity_fn_name("meanmaxsim", MULTI_VECTOR_SIMILARITY_FNS, "MultiVectorEncoder") == "meanmaxsim"
    with pytest.raises(InputValidationError) as info:
        checked_similarity_fn_name("cos_sim", MULTI_VECTOR_SIMILARITY_FNS, "MultiVectorEncoder")
    assert str(info.value) == (f"MultiVectorEncoder supports similarity_fn_name in {MULTI_VECTOR_SIMILARITY_FNS}, "
                               "got 'cos_sim'.")

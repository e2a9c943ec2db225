"""Walk the README's error table (issue 19): every row is covered by a named test that exists, every error class a
row names is a real StRuntimeError subclass, and the covering tests mention the error they expect."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import st_runtime
from st_runtime.multiprocess import WorkerDiedError

ROOT = Path(__file__).resolve().parents[1]
T = "tests/runtime/"
# first-cell text (a unique start of it) -> the tests that check the row
COVERAGE = {
    "bundle path missing": [T + "test_bundle_errors.py::test_missing_path"],
    "a Sentence Transformers folder opened as a bundle": [T + "test_bundle_errors.py::test_sentence_transformers_folder_gets_a_hint"],
    "a graph file bit-flipped": [T + "test_bundle_errors.py::test_bit_flip_fails_checksum",
                                 T + "test_bundle_errors.py::test_truncated_graph"],
    "tokenizer missing": [T + "test_bundle_errors.py::test_missing_tokenizer"],
    "manifest of a newer format version": [T + "test_bundle_errors.py::test_newer_format"],
    "manifest path pointing outside": [T + "test_bundle_errors.py::test_manifest_path_traversal"],
    "cross-encoder bundle opened as": [T + "test_bundle_errors.py::test_cross_encoder_bundle_as_sentence_transformer",
                                       T + "test_bundle_errors.py::test_sentence_transformer_bundle_as_cross_encoder"],
    "non-string in a batch": [T + "test_encode.py::test_non_string_in_batch_is_refused"],
    "text with a lone surrogate": [T + "test_encode.py::test_lone_surrogate_is_a_clear_error"],
    "empty strings, whitespace-only": [T + "test_encode.py::test_hard_texts_are_finite"],
    "`batch_size` 0": [T + "test_encode.py::test_bad_batch_size"],
    "a sentence-transformers argument that needs torch": [T + "test_typed_errors.py::test_refused_sentence_transformers_arguments_say_why",
                                                          "tests/conformance/test_signatures.py::test_refused_loading_arguments_are_listed_and_raise_with_the_reason"],
    "a `st_runtime.util` name": ["tests/conformance/test_signatures.py::test_every_util_name_is_provided_or_refused_with_a_reason"],
    "an unknown device": [T + "test_typed_errors.py::test_a_bad_device_is_not_reported_as_a_missing_library"],
    "`device=\"cuda\"` without onnxruntime-gpu": [T + "test_typed_errors.py::test_a_missing_execution_provider_is_a_missing_library"],
    "a Sentence Transformers folder with broken JSON": [T + "test_typed_errors.py::test_st_folder_with_broken_json_is_a_bundle_error",
                                                        T + "test_typed_errors.py::test_pooling_errors_are_typed"],
    "export: a config file that is not JSON": [T + "test_typed_errors.py::test_exporter_source_and_specs_errors_are_typed"],
    "embeddings that are not a regular numeric array": [T + "test_fuzz.py::test_similarity_functions",
                                                        T + "test_config.py::test_semantic_search_refuses_a_negative_top_k"],
    "unknown `prompt_name`, precision or variant": [T + "test_encode.py::test_unknown_prompt_name",
                                                    T + "test_encode.py::test_unknown_precision",
                                                    T + "test_bundle_errors.py::test_unknown_variant"],
    "`truncate_dim` larger than the dimension": [T + "test_encode.py::test_truncate_dim_and_normalize"],
    "`convert_to_tensor=True`": [T + "test_encode.py::test_convert_to_tensor_is_refused_clearly"],
    "export: missing model path": ["tests/exporters/test_export_errors.py::test_missing_model_path",
                                   "tests/exporters/test_export_errors.py::test_folder_that_is_not_a_model",
                                   "tests/exporters/test_export_errors.py::test_unsupported_module"],
    "export of a model whose fp32 weights x3": ["tests/exporters/test_memory_check.py::test_too_big_a_model_fails_before_loading"],
    "export misses parity": ["tests/exporters/test_export_errors.py::test_parity_miss_writes_nothing"],
    "export to an existing bundle": ["tests/exporters/test_export_errors.py::test_overwrite_needed_and_atomic",
                                     "tests/exporters/test_export_errors.py::test_refuses_to_replace_a_non_bundle"],
    "export killed": ["tests/exporters/test_export_errors.py::test_interrupted_export_leaves_no_bundle"],
    "one model object shared by 8 threads": [T + "test_reliability.py::test_eight_threads_share_one_model"],
    "a multi-process pool worker killed": [T + "test_reliability.py::test_pool_matches_single_process_and_survives_a_killed_worker"],
    "10,000 encode calls": [T + "test_reliability.py::test_no_memory_growth_over_10000_calls"],
    "a bundle's file replaced by a pickle": ["tests/exporters/test_st_folder.py::test_pickled_weights_are_never_loaded"],
    "ST folder with several graphs": ["tests/exporters/test_st_folder.py::test_several_graphs_are_never_picked_silently"],
    "a token budget (`max_batch_tokens`) smaller": [T + "test_engine.py::test_token_budget_smaller_than_one_input_terminates"],
    "`--max-drop` outside (0, 1)": ["tests/exporters/test_accuracy_control.py::test_max_drop_outside_the_open_unit_interval_is_refused",
                                   "tests/exporters/test_accuracy_control.py::test_max_drop_with_other_variants_or_kinds_is_refused",
                                   "tests/exporters/test_accuracy_control.py::test_cli_refuses_max_drop_before_loading_the_model"],
    "an all-padding or empty input": [T + "test_encode.py::test_hard_texts_are_finite"],
}
BUILTINS = {"AttributeError", "ImportError", "ValueError", "TypeError"}


def _rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0] not in ("what was tried", "---") and not set(cells[0]) <= {"-"}:
            rows.append((cells[0], cells[1]))
    return rows


def _test_source(node_id: str) -> str:
    path, name = node_id.split("::")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment((ROOT / path).read_text(encoding="utf-8"), node) or ""
    raise AssertionError(f"{node_id} does not exist")


def _error_class(name: str) -> type:
    return WorkerDiedError if name == "WorkerDiedError" else getattr(st_runtime, name)


def test_every_row_of_the_error_table_is_covered_by_a_test_that_expects_its_error():
    rows = _rows()
    assert len(rows) >= 30
    used = set()
    for tried, outcome in rows:
        keys = [key for key in COVERAGE if tried.startswith(key)]
        assert len(keys) == 1, f"README error row {tried!r} has no (or an ambiguous) covering test in COVERAGE"
        used.add(keys[0])
        sources = [_test_source(node_id) for node_id in COVERAGE[keys[0]]]
        for name in re.findall(r"`(\w+Error)`", outcome):
            if name in BUILTINS:
                continue
            cls = _error_class(name)
            assert issubclass(cls, st_runtime.StRuntimeError), name
            names = {name} | {sub.__name__ for sub in cls.__subclasses__()}
            assert any(n in src for src in sources for n in names) or any(
                n in (ROOT / node_id.split("::")[0]).read_text() for node_id in COVERAGE[keys[0]] for n in names
            ), f"no covering test of {tried!r} mentions {name}"
    assert used == set(COVERAGE), f"COVERAGE has entries for rows the README no longer has: {set(COVERAGE) - used}"

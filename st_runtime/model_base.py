"""What SentenceTransformer and CrossEncoder share: a runner (tokenizer + graph session), a device, and the one
immutable configuration (``st_runtime.config``) that every encode path receives whole."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .engine import GraphRunner
from .errors import InputValidationError, UnsupportedDeviceError
from .tokenization import TextTokenizer

Rows = list[tuple[list[int], list[int]]]
Opener = Callable[[str | None], tuple[str, GraphRunner]]


class RunnerModel:
    """Base of the public model classes: tokenizer, configuration, settable max_seq_length, device."""

    bundle: Any
    variant: str
    _runner: GraphRunner
    _device: str
    _config: Any
    _length_field = "max_seq_length"
    _opener: Opener | None = None  # reopens the graph on another device: (variant, runner)
    _factory: Callable[..., Any] | None = None  # picklable: opens this model in a pool worker

    # ----- configuration ---------------------------------------------------------------------------------------
    @property
    def config(self):
        """The model's immutable configuration; set a setting (``model.max_seq_length = 16``) to get a new one."""
        return self._config

    def _set_config(self, config: Any) -> None:
        length = getattr(config, self._length_field)
        self._tokenizer_view = self._runner.tokenizer.with_max_length(length)
        self._config = config

    def _tokenizer_for(self, config: Any) -> TextTokenizer:
        if config is self._config:
            return self._tokenizer_view
        return self._runner.tokenizer.with_max_length(getattr(config, self._length_field))

    @property
    def tokenizer(self) -> TextTokenizer:
        """The ``TextTokenizer`` (wraps a ``tokenizers.Tokenizer``) truncating at the configured max length.

        ``model.tokenizer.encode(texts)`` gives the rows (token ids, type ids) that ``encode_rows`` / ``encode_tokenized`` take.
        """
        return self._tokenizer_view

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self._config, self._length_field)

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        value = self._runner.tokenizer.check_max_length(value)
        self._set_config(self._config.replace(**{self._length_field: value}))

    def get_max_seq_length(self) -> int | None:
        return self.max_seq_length

    @property
    def prompts(self) -> dict[str, str]:
        """A copy of the configured prompts (name -> text); setting it makes a new configuration."""
        return dict(self._config.prompts)

    @prompts.setter
    def prompts(self, value: dict[str, str]) -> None:
        self._set_config(self._config.replace(prompts=value))

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt used when a call names none; setting it makes a new configuration."""
        return self._config.default_prompt_name

    @default_prompt_name.setter
    def default_prompt_name(self, value: str | None) -> None:
        self._set_config(self._config.replace(default_prompt_name=value))

    # ----- devices ---------------------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self._device

    def to(self, device: str) -> "RunnerModel":
        """Re-open the graph on another device ('cpu', 'cuda', 'cuda:1'); the configuration is kept as it is."""
        if not isinstance(device, str):
            raise UnsupportedDeviceError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}.")
        if self._opener is None:
            raise InputValidationError("A model built from parts cannot change device; build it on the device.")
        self.variant, runner = self._opener(device)
        self._runner, self._device = runner, device
        self._set_config(self._config)
        return self

    def _where(self) -> str:
        return str(self.bundle.root) if self.bundle is not None else "<in memory>"

    # ----- batches ---------------------------------------------------------------------------------------------
    def _row_batches(self, rows: Sequence[tuple[list[int], list[int]]], tokenizer: TextTokenizer, batch_size: int,
                     max_tokens: int | None, extra: dict[str, np.ndarray] | None = None,
                     outputs: Sequence[str] | None = None,
                     ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(indices, padded inputs, graph outputs) per batch of already-tokenized rows, longest first
        (``GraphRunner.iter_rows``; ``outputs``: the graph outputs to fetch, None for all)."""
        yield from self._runner.iter_rows(rows, batch_size, max_tokens, extra, outputs, tokenizer=tokenizer)

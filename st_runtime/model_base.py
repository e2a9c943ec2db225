"""What SentenceTransformer and CrossEncoder share: a runner (tokenizer + graph session) and a device."""

from __future__ import annotations

from typing import Any

from .engine import GraphRunner


class RunnerModel:
    """Base of the public model classes: tokenizer, settable max_seq_length, device."""

    bundle: Any
    _runner: GraphRunner
    _device: str

    @property
    def tokenizer(self):
        """The configured ``TextTokenizer`` (wraps a ``tokenizers.Tokenizer``)."""
        return self._runner.tokenizer

    @property
    def max_seq_length(self) -> int | None:
        return self._runner.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self._runner.tokenizer.max_seq_length = value

    def get_max_seq_length(self) -> int | None:
        return self.max_seq_length

    @property
    def device(self) -> str:
        return self._device

    def _where(self) -> str:
        return str(self.bundle.root) if self.bundle is not None else "<in memory>"

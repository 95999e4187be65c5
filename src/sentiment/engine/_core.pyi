# The compiled core (_core.c); the typed wrappers are in kernels.py and dictionary.py.
from typing import Any

def count_tokens(buf: Any, /) -> tuple[int, int]: ...
def scan(buf: Any, starts: Any, lengths: Any, h32: Any, h64: Any, line_of: Any, /) -> int: ...
def encode(
    tok_id: Any,
    tok_label: Any,
    h32: Any,
    line_of: Any,
    nwords: int,
    word_ngrams: int,
    buckets: int,
    line_ptr: Any,
    ids: Any,
    label_ptr: Any,
    labels: Any,
    ntok: Any,
    /,
) -> tuple[int, int]: ...
def train_lines(
    wi: Any,
    wo: Any,
    dim: int,
    line_ptr: Any,
    ids: Any,
    label_ptr: Any,
    labels: Any,
    ntok: Any,
    bounds: Any,
    lr0: float,
    tokens_before: float,
    tokens_total: float,
    seed: int,
    /,
) -> tuple[float, int, int]: ...
def count_correct(
    wi: Any,
    wo: Any,
    dim: int,
    line_ptr: Any,
    ids: Any,
    label_ptr: Any,
    labels: Any,
    threads: int,
    /,
) -> tuple[int, int]: ...

class Predictor:
    def __init__(
        self,
        wi: Any,
        wo: Any,
        dim: int,
        words: bytes,
        nwords: int,
        word_ngrams: int,
        buckets: int,
        log_probs: bool = ...,
        /,
    ) -> None: ...
    def top(self, text: Any, k: int, /) -> tuple[tuple[int, ...], tuple[float, ...]]: ...
    def set_normalizer(self, normalizer: object, flags: Any, lower: Any, opts: Any, /) -> None: ...
    def top_text(
        self, text: str, k: int, /
    ) -> tuple[tuple[int, ...], tuple[float, ...]] | None: ...
    def proba_texts(self, texts: list[str], out: Any, /) -> list[int]: ...
    def top_proba_texts(
        self, texts: list[str], out: Any, k: int, /
    ) -> list[tuple[tuple[int, ...], tuple[float, ...]] | None]: ...
    def set_splitter(self, splitter: object, /) -> None: ...
    def answers(
        self,
        texts: list[str],
        probs: Any,
        where: bytes,
        power: float,
        floor: float,
        margin: float,
        weights: Any,
        scores: Any,
        /,
    ) -> list[int | None]: ...

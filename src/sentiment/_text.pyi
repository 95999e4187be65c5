# The compiled text normalization (_text.c); the typed wrappers are in text_kernel.py.
from typing import Any

def normalize_one(data: Any, flags: Any, lower: Any, opts: Any, /) -> bytes | None: ...
def normalize_utf8(
    data: Any, offsets: Any, flags: Any, lower: Any, opts: Any, /
) -> tuple[bytes, bytes]: ...
def clean_csv_lines(
    data: Any,
    offsets: Any,
    layout_of: Any,
    split_of: Any,
    policy: Any,
    flags: Any,
    lower: Any,
    opts: Any,
    title_weight: int,
    min_tokens: int,
    seed_prefix: Any,
    fraction: float,
    crc: Any,
    /,
) -> tuple[bytes, bytes, bytes, bytes]: ...
def normalizer() -> object: ...  # a capsule "sentiment._text.normalize_into"

"""A least-recently-used cache keyed by query text and bounded by the bytes of the texts it keeps
(issue 11): a count bound (`lru_cache(maxsize=1024)`) let 20 distinct 2 MB texts pin 56 MB. Only what
the caller stores is kept: the prepared path stores valid documents, never a text that failed."""
from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class TextCache(Generic[V]):
    def __init__(self, max_bytes: int, max_text_bytes: int | None = None) -> None:
        """`max_bytes`: the texts kept, together; `max_text_bytes`: the longest text kept at all
        (a quarter of the whole by default, so that one text cannot empty the cache)."""
        self.max_bytes = max_bytes
        self.max_text_bytes = max_bytes // 4 if max_text_bytes is None else max_text_bytes
        self.bytes = 0
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, text: str) -> V | None:
        value = self._items.get(text)
        if value is not None:
            self._items.move_to_end(text)
        return value

    def put(self, text: str, value: V) -> None:
        size = len(text)  # characters: a bound on the text's share, not the exact allocation
        if size > self.max_text_bytes or text in self._items:
            return
        self._items[text] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            old, _ = self._items.popitem(last=False)
            self.bytes -= len(old)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, text: str) -> bool:
        return text in self._items

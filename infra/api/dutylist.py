"""The duty list in force, as the api sees it: the latest version published (the store keeps every
one, infra/store/sql/009), else the file the workers start from. Re-read at most every `max_age` seconds."""

from __future__ import annotations

import threading
import time

from infra.store import Store
from pipeline.dutylists import DutyBook, read_dutylist


class CurrentDutyList:
    def __init__(self, store: Store, bootstrap: DutyBook, max_age: float = 30.0):
        self.store, self.bootstrap, self.max_age = store, bootstrap, max_age
        self._book, self._read_at = bootstrap, float("-inf")
        self._lock = threading.Lock()
        self._titles: tuple[str | None, dict[str, str]] = (None, {})

    def item_titles(self) -> dict[str, str]:
        """Item number → title in the list in force (city and local lists), for names beside codes."""
        book = self.get()
        if self._titles[0] != book.version:
            self._titles = (book.version, {i.number: i.title for i in book.every_item()})
        return self._titles[1]

    def get(self) -> DutyBook:
        with self._lock:
            if time.monotonic() - self._read_at > self.max_age:
                self._read_at = time.monotonic()
                rows = self.store.query("SELECT version, yaml FROM {db}.dutylist_versions FINAL "
                                        "ORDER BY published_at DESC LIMIT 1")
                if rows and rows[0][0] != self._book.version:
                    dutylist, problems = read_dutylist(rows[0][1], self.bootstrap.registry)
                    if not problems:  # the workers refuse such a version too
                        self._book = DutyBook(dutylist, self.bootstrap.registry)
            return self._book

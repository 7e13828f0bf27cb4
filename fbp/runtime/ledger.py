"""The loss ledger: every packet a run did not deliver normally, where and why.

Kinds:
- `failed`: an exception in `process` (the packet went to ERROR, or ended the process);
- `replayed`: delivered again to a restarted process (it had received them, not finished);
- `dropped`: left out by a delivery policy;
- `lost`: still waiting in the ring of a process that died and was not restarted.

Entries are counted per (where, kind, reason): `where` is `INSTANCE.PORT` for a failure,
the ring's label (`SRC.PORT -> TGT.PORT`) for the others. `fbp run` prints the ledger in
its final summary and `--ledger FILE` writes it as JSON: {"entries": [...], "totals":
{kind: count}}. Sinks can write it next to their data (nexus/WriteNXdata's LOSSES port).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table

__all__ = ["KINDS", "RUN_LEDGER_ENV", "Ledger", "LedgerEntry", "current_ledger"]

KINDS = ("failed", "replayed", "dropped", "lost")
# In a process of `fbp run`: the file where the supervisor keeps the run's ledger current.
RUN_LEDGER_ENV = "FBP_RUN_LEDGER"
MAX_SEQS = 100  # seqs kept per entry (the count is always exact)


@dataclass
class LedgerEntry:
    """One line of the ledger: how many packets, where, of which kind, and why."""

    where: str
    kind: str
    reason: str
    count: int = 0
    seqs: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        """The entry as plain data."""
        return {
            "where": self.where,
            "kind": self.kind,
            "reason": self.reason,
            "count": self.count,
            "seqs": list(self.seqs),
        }


class Ledger:
    """The loss ledger of one run (see the module docstring)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], LedgerEntry] = {}
        self.version = 0  # bumped by every change

    def add(self, where: str, kind: str, reason: str, count: int = 1, seq=None) -> None:
        """Count `count` packets (ValueError for an unknown kind)."""
        if kind not in KINDS:
            raise ValueError(f"ledger kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if count <= 0:
            return
        entry = self.entries.setdefault((where, kind, reason), LedgerEntry(where, kind, reason))
        entry.count += count
        self.version += 1
        if seq is not None and len(entry.seqs) < MAX_SEQS:
            entry.seqs.append(int(seq))

    def totals(self) -> dict[str, int]:
        """Packets per kind."""
        counts: Counter[str] = Counter()
        for entry in self.entries.values():
            counts[entry.kind] += entry.count
        return {kind: counts.get(kind, 0) for kind in KINDS}

    def to_json(self) -> dict:
        """{"entries": [...], "totals": {kind: count}}."""
        return {
            "entries": [entry.to_json() for entry in self.entries.values()],
            "totals": self.totals(),
        }

    def write(self, path: str) -> None:
        """Write the ledger as JSON (atomically: a reader never sees half a file).

        Raises:
            OSError: the file cannot be written.
        """
        temporary = f"{path}.tmp"
        with open(temporary, "w") as handle:
            json.dump(self.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)

    def table(self) -> Table:
        """The ledger as a rich table (for the final summary)."""
        table = Table(title="loss ledger", title_justify="left")
        for column in ("where", "kind", "packets", "reason"):
            table.add_column(column, justify="right" if column == "packets" else "left")
        for entry in self.entries.values():
            table.add_row(entry.where, entry.kind, f"{entry.count:,}", entry.reason)
        return table

    def __bool__(self) -> bool:
        return bool(self.entries)


def current_ledger() -> dict:
    """The ledger of the run this process belongs to, as far as the supervisor knows now.

    For sinks that write it next to their data (e.g. in `finish`). Outside `fbp run`, or
    before anything happened, it is empty: {"entries": [], "totals": {kind: 0}}.
    """
    path = os.environ.get(RUN_LEDGER_ENV)
    if path:
        try:
            with open(path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            pass
    return {"entries": [], "totals": dict.fromkeys(KINDS, 0)}

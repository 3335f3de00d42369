"""Crash-test worker: feeds a reproducible entry stream through a StorageActor forever.

Usage: ``python -m tests.integration.storage_crash_worker DATA_DIR SEED``

Like a restarted single-node Raft host, it first re-applies the durable log
tail above the applied index, then appends and applies new entries of the
stream ``tests.command_gen.entry_at(SEED, i)``.  It prints (and flushes) one
line per report it receives from the StorageActor: ``persisted <last index>``
once a Ready is durable, ``applied <index>`` once a batch is applied.  The test
kills it with SIGKILL at an arbitrary moment.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import pykka

from actors.runtime.replies import wait_reply
from actors.storage.actor import StorageActor
from actors.storage.messages import Applied, ApplyEntries, PersistReady, Read, ReadyPersisted
from actors.storage.store import NodeStore, StoreOptions
from scheduled_db.raft.messages import HardState
from scheduled_db.state.reads import GetApplied
from tests.command_gen import entry_at

OPTIONS = StoreOptions(snapshot_entries=120, keep_entries=5, chunk_bytes=4096)


class Printer(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> None:
        if isinstance(message, ReadyPersisted):
            print(f"persisted {message.last_index}", flush=True)
        elif isinstance(message, Applied):
            print(f"applied {message.applied_index}", flush=True)


def main(data_dir: str, seed: int) -> None:
    store = NodeStore.open(data_dir, "n1", options=OPTIONS)
    printer = Printer.start()
    ref = StorageActor.start(store)
    applied, last = store.applied()[0], store.log.last_index()
    if last > applied:
        tail = tuple(store.log.entries(applied + 1, last + 1))
        ref.tell(ApplyEntries(tail, reply=printer.tell))
    rng = random.Random(seed)
    index = last + 1
    while True:
        batch = tuple(entry_at(seed, i) for i in range(index, index + rng.randint(1, 8)))
        index += len(batch)
        ready = PersistReady(index, HardState(1, "n1", index - 1), batch, reply=printer.tell)
        ref.tell(ready)
        ref.tell(ApplyEntries(batch, reply=printer.tell))
        wait_reply(ref, lambda r: Read(0, GetApplied(), r), 30)  # flow control, not a settle wait


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

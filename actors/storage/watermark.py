"""The durability watermark: what this node has made durable, recorded outside RocksDB.

RocksDB replays its write-ahead log up to the first bad record and opens without
a word about what lay beyond it (``point_in_time`` recovery, the default and the
only mode that also starts after a write torn by a crash).  A log cut short or
damaged in its middle therefore looks, to RocksDB, like a crash: the node would
start without entries it had acknowledged, and in a cluster vote as if it never
had them.  The watermark, kept in its own small file, is what tells the two
apart: on open, the durable state must reach at least as far as the watermark
says it did (:func:`check`), else the node refuses to start.

What a :class:`Mark` claims: the log reaches ``last_index`` (whose entry has
``last_term``, unless that is 0), and the hard state has reached ``term``,
``vote`` (in that term) and ``commit``.  Every claim is true of the durable
state whenever the file holds it:

* it is raised only *after* the synced batch it describes returned;
* before a batch that shortens or rewrites the log (a new leader overwriting a
  tail, an installed snapshot) it is lowered to what survives that batch, and
  synced, *before* the batch is written.

When it is written (:class:`Watermark`), off the synced write path:

* on the StorageActor's watermark tick (every ``TICK_S``), if the log moved:
  one ``pwrite`` to the page cache, ``fdatasync`` at most every
  ``sync_interval_s``.  Writing it after every Ready instead cost 10-13% of
  the rate of synced writes (measured on ext4: each write dirties the file's
  inode, which the next fsync of RocksDB's log then commits to the journal);
* at once, synced, when a Ready changed the term or the vote (elections are
  rare, and a lost vote is the dangerous loss);
* synced, at close.

So what is detected: after a process crash (SIGKILL, OOM), the loss of
anything made durable more than one tick before the crash; after a power
failure, more than ``sync_interval_s`` before.  A lost term or vote always.
Entries made durable in that last moment and then lost to damage are not.

The file holds two fixed slots written in turn; each is ``magic | length |
msgpack payload | crc32``, and the valid slot with the higher sequence number
wins, so a write torn by a power failure leaves the other one.  Removing the
file is how an operator accepts a loss and starts with what is left.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import msgpack
from rocksdict import Rdict

from actors.storage.datadir import WATERMARK_FILE, DataDirError, fsync_dir
from scheduled_db.raft.messages import HardState
from scheduled_db.raft.storage import CompactedError, UnavailableError

SLOT_BYTES = 256
_MAGIC = b"SDWM"
_HEAD = struct.Struct(">4sH")
_CRC = struct.Struct(">I")
SYNC_INTERVAL_S = 1.0
TICK_S = 0.05

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mark:
    """What the durable state reached, by the node's own account (see the module doc)."""

    last_index: int = 0
    last_term: int = 0  # 0: not checked (a mark lowered before a rewrite)
    term: int = 0
    vote: str = ""
    commit: int = 0

    def lowered_to(self, index: int) -> Mark:
        """This mark, claiming no log entry past ``index``."""
        if index >= self.last_index:
            return self
        return replace(self, last_index=index, last_term=0)


class LogView(Protocol):
    """The parts of :class:`~actors.storage.raft_log_store.RaftLogStore` a check reads."""

    def hard_state(self) -> HardState: ...
    def last_index(self) -> int: ...
    def term(self, index: int) -> int: ...


def mark_of(log: LogView) -> Mark:
    """The mark that describes ``log`` as it is now."""
    hs, last = log.hard_state(), log.last_index()
    return Mark(last, log.term(last), hs.term, hs.vote, hs.commit)


def check(mark: Mark, log: LogView) -> str | None:
    """What ``log`` lacks that ``mark`` says was made durable; None if nothing."""
    last, hs = log.last_index(), log.hard_state()
    if last < mark.last_index:
        return f"log entries {last + 1}..{mark.last_index} were made durable but are missing"
    if mark.last_term and _term(log, mark.last_index) not in (None, mark.last_term):
        return (
            f"log entry {mark.last_index} of term {mark.last_term} is missing "
            f"(an entry of term {_term(log, mark.last_index)} is in its place)"
        )
    if hs.term < mark.term:
        return f"the hard state of term {mark.term} is missing (it is at term {hs.term})"
    if hs.term == mark.term and mark.vote and hs.vote != mark.vote:
        return f"the vote for {mark.vote} in term {mark.term} is missing"
    if hs.commit < mark.commit:
        return f"the commit index {mark.commit} is missing (it is at {hs.commit})"
    return None


def _term(log: LogView, index: int) -> int | None:
    try:
        return log.term(index)
    except (CompactedError, UnavailableError):
        return None  # below the last snapshot: committed, nothing to compare


class WatermarkError(ValueError):
    """The watermark file exists but neither of its slots can be read."""


def _encode(seq: int, mark: Mark) -> bytes:
    fields = [seq, mark.last_index, mark.last_term, mark.term, mark.vote, mark.commit]
    payload = bytes(msgpack.packb(fields))
    body = _HEAD.pack(_MAGIC, len(payload)) + payload
    slot = body + _CRC.pack(zlib.crc32(body))
    if len(slot) > SLOT_BYTES:
        raise ValueError(f"a watermark of {len(slot)} bytes does not fit a slot")
    return slot.ljust(SLOT_BYTES, b"\0")


def _decode(slot: bytes) -> tuple[int, Mark] | None:
    if len(slot) < _HEAD.size:
        return None
    magic, length = _HEAD.unpack_from(slot)
    end = _HEAD.size + length
    if magic != _MAGIC or end + _CRC.size > len(slot):
        return None
    if _CRC.unpack_from(slot, end)[0] != zlib.crc32(slot[:end]):
        return None
    try:
        seq, last, last_term, term, vote, commit = msgpack.unpackb(slot[_HEAD.size : end])
        return int(seq), Mark(int(last), int(last_term), int(term), str(vote), int(commit))
    except (ValueError, TypeError):
        return None


class Watermark:
    """The watermark file of one data directory, open for the node's lifetime.

    Only the StorageActor's thread calls it.  :attr:`mark` is what the file
    claims now.  Writes raise OSError (a full disk, say); the mark stays as it was.
    """

    def __init__(self, path: Path, sync_interval_s: float = SYNC_INTERVAL_S) -> None:
        self.path = path
        self._sync_interval = sync_interval_s
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        raw = os.pread(self._fd, 2 * SLOT_BYTES, 0)
        slots = [_decode(raw[i : i + SLOT_BYTES]) for i in (0, SLOT_BYTES)]
        found = [s for s in slots if s is not None]
        if raw.strip(b"\0") and not found:
            os.close(self._fd)
            raise WatermarkError(f"watermark file {path} is unreadable")
        self._seq, self.mark = max(found, key=lambda s: s[0]) if found else (0, Mark())
        self.found = bool(found)  # False: a new file (a new directory, or one from before it)
        self._synced_at = time.monotonic()
        self._failing = False

    def write(self, mark: Mark, sync: bool = False) -> None:
        """Record ``mark`` (in the slot not holding the current one); fdatasync if
        ``sync`` or if the last one was ``sync_interval_s`` ago."""
        if mark == self.mark and not sync:
            return
        seq = self._seq + 1
        os.pwrite(self._fd, _encode(seq, mark), (seq % 2) * SLOT_BYTES)
        self._seq, self.mark = seq, mark
        now = time.monotonic()
        if sync or now - self._synced_at >= self._sync_interval:
            os.fdatasync(self._fd)
            self._synced_at = now

    def lower_to(self, index: int) -> None:
        """Before a batch that keeps the log only up to ``index``: claim no more (synced)."""
        lowered = self.mark.lowered_to(index)
        if lowered != self.mark:
            self.write(lowered, sync=True)

    def follow(self, log_store: LogView) -> None:
        """Claim what the durable ``log_store`` holds now (synced at once if the
        term or the vote changed).  A failure to write is logged, not raised:
        what it would claim is durable all the same."""
        new, old = mark_of(log_store), self.mark
        try:
            self.write(new, sync=(new.term, new.vote) != (old.term, old.vote))
        except OSError as exc:
            if not self._failing:  # once, not at every tick
                log.warning("watermark %s not updated: %s", self.path, exc)
            self._failing = True
        else:
            self._failing = False

    def follow_election(self, log_store: LogView) -> None:
        """After a synced batch: :meth:`follow` now if it changed the term or the vote."""
        hs = log_store.hard_state()
        if (hs.term, hs.vote) != (self.mark.term, self.mark.vote):
            self.follow(log_store)

    def close(self) -> None:
        os.close(self._fd)


def open_checked(data_dir: Path, db: Rdict, log_store: LogView, sync_s: float) -> Watermark:
    """Open the watermark of ``data_dir``; raise DataDirError if the log lost what it
    records (or WatermarkError if it is unreadable); then record the log as it is."""
    try:
        mark = Watermark(data_dir / WATERMARK_FILE, sync_s)
    except WatermarkError as exc:
        raise DataDirError(data_dir, f"{exc}: remove it to start without the check") from None
    problem = check(mark.mark, log_store) if mark.found else None
    if problem is not None:
        mark.close()
        raise DataDirError(
            data_dir,
            f"the write-ahead log is damaged: {problem} (recorded in {mark.path}); "
            "refusing to start (see 'WAL recovery policy' in docs/architecture.md)",
        )
    if not mark.found and log_store.last_index() > 0:
        log.warning("%s had no watermark: its log could not be checked this time", data_dir)
    db.flush_wal(True)  # what the replay recovered is durable before the mark claims it
    mark.write(mark_of(log_store), sync=True)
    if not mark.found:
        fsync_dir(data_dir)
    return mark

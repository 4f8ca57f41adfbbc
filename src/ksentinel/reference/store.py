"""The reference platform's state: SQLite (WAL) for rows, a folder for uploaded bytes.

Everything survives a restart, including a SIGKILL in the middle of a chunked upload: a chunk is
written to the token's file and fsync'd before the row that counts it is committed, so the
recorded ``uploadedFileSize`` never exceeds what is on disk and a client resuming at that offset
rewrites at most bytes that were already there.

Lists and counts of entries run on a search index (``entry_index``), as Kaltura's run on sphinx: each
entry write (create, update, delete, a conversion's status change) records a snapshot of the indexed
columns in ``index_queue`` with the time it is due (kaltura/server ``kSphinxSearchManager::execSphinx``
writes a ``SphinxLog`` row that ``populateFromLog.php`` later replays into sphinx). Due snapshots are
applied by :meth:`Store.apply_index`, newest write winning (populateFromLog skips an older log of an
object it already applied a newer one for). A list takes its ids and totalCount from the index and its
objects from the live ``entries`` rows (``SphinxCriteria::applyFilters`` adds ``id IN (sphinx ids)`` to
the MySQL criteria), so an entry deleted but not yet re-indexed is counted but missing from ``objects``.
With a delay of 0 a write goes through to the index in its own transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_ALPHABET = string.digits + string.ascii_lowercase

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    partner_id INTEGER NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    creator_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    description TEXT,
    tags TEXT,
    admin_tags TEXT,
    reference_id TEXT,
    partner_data TEXT,
    partner_sort_value INTEGER,
    status INTEGER NOT NULL,
    type INTEGER NOT NULL,
    media_type INTEGER,
    source_type TEXT,
    moderation_status INTEGER NOT NULL DEFAULT 6,
    display_in_search INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    ready_at REAL,
    version INTEGER NOT NULL DEFAULT 0,
    content_size INTEGER,
    content_sha256 TEXT,
    content_name TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0,
    convert_to INTEGER
);
CREATE INDEX IF NOT EXISTS entries_partner ON entries (partner_id, deleted, status);
CREATE INDEX IF NOT EXISTS entries_ready ON entries (status, ready_at);
CREATE TABLE IF NOT EXISTS entry_index (
    seq INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    applied INTEGER NOT NULL DEFAULT 0,
    partner_id INTEGER NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    description TEXT,
    tags TEXT,
    admin_tags TEXT,
    reference_id TEXT,
    partner_sort_value INTEGER,
    status INTEGER NOT NULL,
    type INTEGER NOT NULL,
    media_type INTEGER,
    moderation_status INTEGER NOT NULL DEFAULT 6,
    display_in_search INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entry_index_partner ON entry_index (partner_id, deleted, status);
CREATE TABLE IF NOT EXISTS index_queue (
    qid INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL,
    due_at REAL NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS index_queue_due ON index_queue (due_at);
CREATE INDEX IF NOT EXISTS index_queue_entry ON index_queue (entry_id, qid);
CREATE TABLE IF NOT EXISTS upload_tokens (
    id TEXT PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL,
    file_name TEXT,
    file_size REAL,
    uploaded_size INTEGER,
    auto_finalize INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attached_object_type TEXT,
    attached_object_id TEXT
);
CREATE INDEX IF NOT EXISTS tokens_partner ON upload_tokens (partner_id, status);
CREATE TABLE IF NOT EXISTS ended_sessions (
    ks_hash TEXT PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    valid_until INTEGER NOT NULL
);
"""

ENTRY_COLUMNS = [
    "id",
    "partner_id",
    "user_id",
    "creator_id",
    "name",
    "description",
    "tags",
    "admin_tags",
    "reference_id",
    "partner_data",
    "partner_sort_value",
    "status",
    "type",
    "media_type",
    "source_type",
    "moderation_status",
    "display_in_search",
    "created_at",
    "updated_at",
    "ready_at",
    "version",
    "content_size",
    "content_sha256",
    "content_name",
    "extra",
    "deleted",
    "convert_to",
]
# what the search index holds of an entry: every column a list/count filters or orders on
INDEX_COLUMNS = [
    "seq",
    "id",
    "partner_id",
    "user_id",
    "name",
    "description",
    "tags",
    "admin_tags",
    "reference_id",
    "partner_sort_value",
    "status",
    "type",
    "media_type",
    "moderation_status",
    "display_in_search",
    "created_at",
    "updated_at",
    "deleted",
]
INDEX_BATCH = 1000  # due index changes applied per call of apply_index (the rest on the next calls)
TOKEN_COLUMNS = [
    "id",
    "partner_id",
    "user_id",
    "status",
    "file_name",
    "file_size",
    "uploaded_size",
    "auto_finalize",
    "created_at",
    "updated_at",
    "attached_object_type",
    "attached_object_id",
]

# KalturaEntryStatus values the reference uses
ENTRY_ERROR_CONVERTING = -1
ENTRY_IMPORT = 0
ENTRY_PRECONVERT = 1
ENTRY_READY = 2
ENTRY_DELETED = 3
ENTRY_NO_CONTENT = 7


def new_entry_id() -> str:
    return "0_" + "".join(secrets.choice(ENTRY_ALPHABET) for _ in range(8))


def new_token_id() -> str:
    return "0_" + secrets.token_hex(16)


def ks_hash(ks: str) -> str:
    return hashlib.sha256(ks.encode()).hexdigest()


def index_delay(lag: float, jitter: float) -> float:
    """Seconds before one write reaches the search index: ``lag`` varied by up to ``jitter`` (a share)."""
    if lag <= 0:
        return 0.0
    share = min(max(jitter, 0.0), 1.0)
    return max(0.0, lag * (1.0 + random.uniform(-share, share)))


@dataclass(frozen=True)
class Query:
    """A compiled entry filter: SQL ``where`` with its parameters, and the order."""

    where: str
    params: tuple[Any, ...]
    order: str = "seq DESC"


class Store:
    """All reads and writes of rows and files. Thread-safe (one lock around one connection)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.upload_dir = self.data_dir / "uploads"
        self.content_dir = self.data_dir / "content"
        for folder in (self.data_dir, self.upload_dir, self.content_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.data_dir / "reference.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._db.executescript(SCHEMA_SQL)
        self._backfill_index()
        self._next_ready_at: float | None = None
        self._next_index_at: float | None = None
        self._refresh_next_ready()
        self._refresh_next_index()

    def _migrate(self) -> None:
        """Bring a data folder of an earlier version up to date (columns added since)."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(entries)").fetchall()}
        if columns and "convert_to" not in columns:
            self._db.execute("ALTER TABLE entries ADD COLUMN convert_to INTEGER")

    def _backfill_index(self) -> None:
        """Index the entries an earlier version stored without an index (none waiting in the queue)."""
        cols = ", ".join(INDEX_COLUMNS)
        with self._tx() as db:
            db.execute(
                f"INSERT OR IGNORE INTO entry_index ({cols}, applied) SELECT {cols}, 0 FROM entries "
                "WHERE id NOT IN (SELECT entry_id FROM index_queue)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ---- time-driven status ("transcoding") ------------------------------------------------------
    def _refresh_next_ready(self) -> None:
        with self._lock:  # query and assignment together: a concurrent refresh never lands a stale time
            row = self._query(
                "SELECT MIN(ready_at) AS t FROM entries WHERE status = ? AND deleted = 0", (ENTRY_PRECONVERT,)
            )
            self._next_ready_at = row[0]["t"] if row and row[0]["t"] is not None else None

    def promote_ready(
        self, now: float | None = None, *, index_delay: Callable[[], float] | None = None
    ) -> set[int]:
        """Finish the conversions whose time has passed; returns the partners whose entries changed.

        An entry leaves PRECONVERT for its ``convert_to`` status (READY, or ERROR_CONVERTING for content
        that is not media); the change reaches the search index after ``index_delay()`` seconds (each
        entry its own draw), like any other write.
        """
        now = time.time() if now is None else now
        if self._next_ready_at is None or self._next_ready_at > now:
            return set()
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, partner_id FROM entries WHERE status = ? AND ready_at <= ? AND deleted = 0",
                (ENTRY_PRECONVERT, now),
            ).fetchall()
            db.execute(
                "UPDATE entries SET status = COALESCE(convert_to, ?), updated_at = ? "
                "WHERE status = ? AND ready_at <= ? AND deleted = 0",
                (ENTRY_READY, int(now), ENTRY_PRECONVERT, now),
            )
            for row in rows:
                self._enqueue_index(db, row["id"], index_delay() if index_delay else 0.0, now)
        self._refresh_next_ready()
        self._refresh_next_index()
        return {row["partner_id"] for row in rows}

    def next_transition_at(self) -> float | None:
        """When the next time-driven change is due: a conversion finishing or a write reaching the index."""
        due = [t for t in (self._next_ready_at, self._next_index_at) if t is not None]
        return min(due) if due else None

    # ---- the search index ------------------------------------------------------------------------
    def _refresh_next_index(self) -> None:
        with self._lock:
            row = self._query("SELECT MIN(due_at) AS t FROM index_queue")
            self._next_index_at = row[0]["t"] if row and row[0]["t"] is not None else None

    def _enqueue_index(self, db: sqlite3.Connection, entry_id: str, delay: float, now: float) -> None:
        """Record a snapshot of the entry's indexed columns, due in ``delay`` seconds (0: apply now)."""
        found = db.execute(
            f"SELECT {', '.join(INDEX_COLUMNS)} FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()
        if found is None:
            return
        snapshot = dict(found)
        qid = db.execute(
            "INSERT INTO index_queue (entry_id, due_at, snapshot) VALUES (?, ?, ?)",
            (entry_id, now + max(0.0, delay), json.dumps(snapshot)),
        ).lastrowid
        assert qid is not None
        if delay <= 0:
            _apply_snapshot(db, qid, snapshot)

    def apply_index(self, now: float | None = None, limit: int = INDEX_BATCH) -> set[int]:
        """Apply up to ``limit`` due index changes; returns the partners whose index changed."""
        now = time.time() if now is None else now
        if self._next_index_at is None or self._next_index_at > now:
            return set()
        partners: set[int] = set()
        with self._tx() as db:
            due = db.execute(
                "SELECT qid, snapshot FROM index_queue WHERE due_at <= ? ORDER BY due_at, qid LIMIT ?",
                (now, limit),
            ).fetchall()
            for item in due:
                snapshot = json.loads(item["snapshot"])
                if _apply_snapshot(db, item["qid"], snapshot):
                    partners.add(int(snapshot["partner_id"]))
        self._refresh_next_index()
        return partners

    def pending_index(self) -> int:
        """How many writes have not reached the search index yet."""
        return int(self._query("SELECT COUNT(*) AS n FROM index_queue")[0]["n"])

    # ---- entries ---------------------------------------------------------------------------------
    def insert_entry(self, row: dict[str, Any], *, index_delay: float = 0.0) -> dict[str, Any]:
        """Store a new entry; list/count see it after ``index_delay`` seconds."""
        row = dict(row)
        row.setdefault("id", new_entry_id())
        row["extra"] = json.dumps(row.get("extra") or {})
        cols = [c for c in ENTRY_COLUMNS if c in row]
        with self._tx() as db:
            db.execute(
                f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
            self._enqueue_index(db, row["id"], index_delay, time.time())
        self._refresh_next_ready()
        self._refresh_next_index()
        entry = self.get_entry(row["partner_id"], row["id"])
        assert entry is not None
        return entry

    def update_entry(
        self, partner_id: int, entry_id: str, changes: dict[str, Any], *, index_delay: float = 0.0
    ) -> dict[str, Any] | None:
        """Change a live entry; list/count see the change after ``index_delay`` seconds."""
        if "extra" in changes:
            changes = {**changes, "extra": json.dumps(changes["extra"])}
        cols = [c for c in changes if c in ENTRY_COLUMNS and c not in ("id", "partner_id")]
        if cols:
            with self._tx() as db:
                changed = db.execute(
                    f"UPDATE entries SET {', '.join(f'{c} = ?' for c in cols)} "
                    "WHERE id = ? AND partner_id = ? AND deleted = 0",
                    [changes[c] for c in cols] + [entry_id, partner_id],
                ).rowcount
                if changed:
                    self._enqueue_index(db, entry_id, index_delay, time.time())
            self._refresh_next_ready()
            self._refresh_next_index()
        return self.get_entry(partner_id, entry_id)

    def get_entry(self, partner_id: int | None, entry_id: str) -> dict[str, Any] | None:
        """A live entry of ``partner_id`` (any partner when None)."""
        if partner_id is None:
            rows = self._query("SELECT * FROM entries WHERE id = ? AND deleted = 0", (entry_id,))
        else:
            rows = self._query(
                "SELECT * FROM entries WHERE id = ? AND partner_id = ? AND deleted = 0",
                (entry_id, partner_id),
            )
        return _entry(rows[0]) if rows else None

    def delete_entry(self, partner_id: int, entry_id: str, *, index_delay: float = 0.0) -> bool:
        """Delete a live entry (get sees it gone at once; list/count after ``index_delay`` seconds)."""
        now = time.time()
        with self._tx() as db:
            changed = db.execute(
                "UPDATE entries SET deleted = 1, status = ?, updated_at = ? WHERE id = ? AND partner_id = ? AND deleted = 0",
                (ENTRY_DELETED, int(now), entry_id, partner_id),
            ).rowcount
            if changed:
                self._enqueue_index(db, entry_id, index_delay, now)
        path = self.content_dir / entry_id
        if changed and path.exists():
            path.unlink()
        self._refresh_next_ready()
        self._refresh_next_index()
        return changed > 0

    def list_entries(self, query: Query, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page: ids and totalCount from the search index, objects from the live rows.

        An id the index still lists but whose entry is gone (deleted, not yet re-indexed) is dropped from
        the page while ``totalCount`` still counts it, as on the real server.
        """
        where = f"deleted = 0 AND ({query.where})" if query.where else "deleted = 0"
        with self._lock:
            total = self._db.execute(
                f"SELECT COUNT(*) AS n FROM entry_index WHERE {where}", query.params
            ).fetchone()["n"]
            ids = [
                r["id"]
                for r in self._db.execute(
                    f"SELECT id FROM entry_index WHERE {where} ORDER BY {query.order} LIMIT ? OFFSET ?",
                    (*query.params, limit, offset),
                ).fetchall()
            ]
            live = {
                r["id"]: r
                for r in self._db.execute(
                    f"SELECT * FROM entries WHERE deleted = 0 AND id IN ({', '.join('?' for _ in ids)})",
                    ids,
                ).fetchall()
            }
        return [_entry(live[i]) for i in ids if i in live], int(total)

    def count_entries(self, query: Query) -> int:
        """How many entries the search index matches."""
        where = f"deleted = 0 AND ({query.where})" if query.where else "deleted = 0"
        return int(self._query(f"SELECT COUNT(*) AS n FROM entry_index WHERE {where}", query.params)[0]["n"])

    def all_entries(
        self, partner_id: int | None = None, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Every entry (for tests and sweeping)."""
        sql, params = "SELECT * FROM entries WHERE 1=1", []
        if partner_id is not None:
            sql, params = sql + " AND partner_id = ?", [partner_id]
        if not include_deleted:
            sql += " AND deleted = 0"
        return [_entry(r) for r in self._query(sql, params)]

    # ---- content ---------------------------------------------------------------------------------
    def content_path(self, entry_id: str) -> Path:
        return self.content_dir / entry_id

    def attach_content(self, entry_id: str, source: Path, *, corrupt: bool = False) -> tuple[int, str]:
        """Move an uploaded file to the entry's content; returns (size, sha256) of what is stored."""
        target = self.content_path(entry_id)
        os.replace(source, target)
        if corrupt and target.stat().st_size > 0:
            with open(target, "r+b") as handle:
                first = handle.read(1)
                handle.seek(0)
                handle.write(bytes([first[0] ^ 0xFF]))
        digest = hashlib.sha256()
        with open(target, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return target.stat().st_size, digest.hexdigest()

    # ---- upload tokens ---------------------------------------------------------------------------
    def token_path(self, token_id: str) -> Path:
        return self.upload_dir / f"{token_id}.bin"

    def insert_token(self, row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        row.setdefault("id", new_token_id())
        cols = [c for c in TOKEN_COLUMNS if c in row]
        with self._tx() as db:
            db.execute(
                f"INSERT INTO upload_tokens ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
        token = self.get_token(row["partner_id"], row["id"])
        assert token is not None
        return token

    def get_token(self, partner_id: int, token_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT * FROM upload_tokens WHERE id = ? AND partner_id = ?", (token_id, partner_id)
        )
        return dict(rows[0]) if rows else None

    def update_token(self, partner_id: int, token_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        cols = [c for c in changes if c in TOKEN_COLUMNS and c not in ("id", "partner_id")]
        with self._tx() as db:
            db.execute(
                f"UPDATE upload_tokens SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ? AND partner_id = ?",
                [changes[c] for c in cols] + [token_id, partner_id],
            )
        return self.get_token(partner_id, token_id)

    def list_tokens(
        self, where: str, params: Sequence[Any], order: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        clause = f"WHERE {where}" if where else ""
        total = self._query(f"SELECT COUNT(*) AS n FROM upload_tokens {clause}", params)[0]["n"]
        rows = self._query(
            f"SELECT * FROM upload_tokens {clause} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [dict(r) for r in rows], int(total)

    def all_tokens(self, partner_id: int | None = None) -> list[dict[str, Any]]:
        if partner_id is None:
            return [dict(r) for r in self._query("SELECT * FROM upload_tokens")]
        return [
            dict(r) for r in self._query("SELECT * FROM upload_tokens WHERE partner_id = ?", (partner_id,))
        ]

    def write_chunk(self, token_id: str, data: bytes, offset: int | None, *, truncate: bool) -> int:
        """Write ``data`` at ``offset`` (append when None) and fsync; returns the file's new size."""
        path = self.token_path(token_id)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        fd = os.open(path, flags, 0o600)
        try:
            position = os.fstat(fd).st_size if offset is None else offset
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, position)
                view, position = view[written:], position + written
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def token_file_size(self, token_id: str) -> int:
        path = self.token_path(token_id)
        return path.stat().st_size if path.exists() else 0

    def drop_token_file(self, token_id: str) -> None:
        path = self.token_path(token_id)
        if path.exists():
            path.unlink()

    # ---- sessions --------------------------------------------------------------------------------
    def end_session(self, ks: str, partner_id: int, valid_until: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO ended_sessions (ks_hash, partner_id, valid_until) VALUES (?, ?, ?)",
                (ks_hash(ks), partner_id, valid_until),
            )

    def ended_sessions(self) -> set[str]:
        return {r["ks_hash"] for r in self._query("SELECT ks_hash FROM ended_sessions")}


def _apply_snapshot(db: sqlite3.Connection, qid: int, snapshot: dict[str, Any]) -> bool:
    """Write one queued snapshot into the index unless a newer write of the entry is there already.

    Drops the entry's queued snapshots up to ``qid`` (older writes are superseded, as populateFromLog
    skips an older log of an object). Returns whether the index changed.
    """
    db.execute("DELETE FROM index_queue WHERE entry_id = ? AND qid <= ?", (snapshot["id"], qid))
    current = db.execute("SELECT applied FROM entry_index WHERE id = ?", (snapshot["id"],)).fetchone()
    if current is not None and current["applied"] > qid:
        return False
    cols = [*INDEX_COLUMNS, "applied"]
    db.execute(
        f"INSERT OR REPLACE INTO entry_index ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [snapshot.get(c) for c in INDEX_COLUMNS] + [qid],
    )
    return True


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    entry = dict(row)
    entry["extra"] = json.loads(entry.get("extra") or "{}")
    return entry

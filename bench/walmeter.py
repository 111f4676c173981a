"""WAL written between two moments: server-wide (LSN difference) and the bench database's own share.

The server-wide figure (`pg_wal_lsn_diff` of `pg_current_wal_lsn()` before and after) counts whatever else
runs on the server. When `pg_waldump` and the WAL directory are readable (PostgreSQL on this machine, bench
run as root or postgres), the records are also attributed: those touching a relation of the bench database,
plus the commit records of their transactions. A temporary physical replication slot holds the WAL until it
is read (it disappears with the session, so it cannot leak).
"""

import os
import re
import shutil
import subprocess
import uuid

import psycopg2

RECORD = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+),")
RELATION = re.compile(r"rel \d+/(\d+)/\d+")


class WalMeter:
    """`start()` then `stop()` -> {"server_bytes", "database_bytes" (None if unattributable), "note"}."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._connection = None

    def start(self) -> "WalMeter":
        self._connection = psycopg2.connect(self.database_url)
        self._connection.autocommit = True
        self.slot = f"tasklogs_bench_{uuid.uuid4().hex[:8]}"
        self._query("SELECT pg_create_physical_replication_slot(%s, true, true)", self.slot)
        self._query(
            "CHECKPOINT"
        )  # every run starts right after a checkpoint: same full-page-write state
        self.start_lsn = self._query("SELECT pg_current_wal_lsn()")
        self.mark_lsn: str | None = None
        return self

    def mark(self) -> None:
        """Note where the WAL stands now: `stop` then also gives the share written up to here."""
        self.mark_lsn = self._query("SELECT pg_current_wal_lsn()")

    def stop(self) -> dict:
        """The WAL since `start`; with a `mark`, also `before_mark`: the same figures up to it."""
        try:
            end_lsn = self._query("SELECT pg_current_wal_lsn()")
            found = self._between(self.start_lsn, end_lsn)
            if self.mark_lsn is not None:
                found["before_mark"] = self._between(self.start_lsn, self.mark_lsn)
            return found
        finally:
            self._connection.close()  # drops the temporary slot

    def _between(self, start_lsn: str, end_lsn: str) -> dict:
        server = int(self._query("SELECT pg_wal_lsn_diff(%s, %s)", end_lsn, start_lsn))
        database, note = self._attributed(start_lsn, end_lsn)
        return {"server_bytes": server, "database_bytes": database, "note": note}

    def _query(self, statement: str, *parameters):
        with self._connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchone()[0] if cursor.description else None

    def _attributed(self, start_lsn: str, end_lsn: str) -> tuple[int | None, str]:
        waldump = self._waldump()
        wal_directory = os.path.join(self._query("SHOW data_directory"), "pg_wal")
        if waldump is None or not os.access(wal_directory, os.R_OK):
            return None, "pg_waldump or the WAL directory not readable: server-wide figure only"
        dump = subprocess.run(
            [waldump, "-p", wal_directory, "-s", start_lsn, "-e", end_lsn],
            capture_output=True,
            text=True,
        )
        if dump.returncode != 0 and not dump.stdout:
            return None, f"pg_waldump failed: {dump.stderr.strip()[:200]}"
        oid = str(self._query("SELECT oid FROM pg_database WHERE datname = current_database()"))
        return database_share(dump.stdout.splitlines(), oid), "attributed with pg_waldump"

    def _waldump(self) -> str | None:
        major = int(self._query("SHOW server_version_num")) // 10000
        candidate = f"/usr/lib/postgresql/{major}/bin/pg_waldump"
        return candidate if os.path.exists(candidate) else shutil.which("pg_waldump")


def database_share(lines: list[str], database_oid: str) -> int:
    """Bytes of the WAL records that touch the database's relations, plus their transactions' other
    records."""
    records, ours = [], set()
    for line in lines:
        match = RECORD.search(line)
        if not match:
            continue
        size, xid = int(match.group(1)), match.group(2)
        databases = set(RELATION.findall(line))
        records.append((size, xid, databases))
        if database_oid in databases and xid != "0":
            ours.add(xid)
    return sum(
        size
        for size, xid, databases in records
        if database_oid in databases or (not databases and xid in ours)
    )

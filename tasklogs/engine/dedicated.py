"""Dedicated database connections: outside the pool, autocommit, closed for real when dropped.

LISTEN and session-level advisory locks belong to one connection for its whole life; a pooled connection
would hand them to whoever checks it out next."""


class Dedicated:
    """One lazily opened dedicated connection; `prepare(dbapi_connection)` runs on each (re)connect."""

    def __init__(self, sa_engine, prepare):
        self._engine, self._prepare = sa_engine, prepare
        self._fairy = None

    def get(self):
        """The DBAPI connection, opened (and prepared) if there is none."""
        if self._fairy is None:
            fairy = self._engine.raw_connection()
            fairy.detach()  # closing it must close it, releasing everything the session holds
            fairy.dbapi_connection.autocommit = True
            try:
                self._prepare(fairy.dbapi_connection)
            except Exception:
                fairy.close()
                raise
            self._fairy = fairy
        return self._fairy.dbapi_connection

    @property
    def open(self) -> bool:
        return self._fairy is not None

    def drop(self) -> None:
        """Close it (a broken one too); the next `get` opens a new one."""
        fairy, self._fairy = self._fairy, None
        if fairy is not None:
            try:
                fairy.close()
            except Exception:  # noqa: BLE001 - it may be broken already
                pass

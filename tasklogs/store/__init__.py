"""The store: PostgreSQL (or SQLite for quick local runs) behind one unit of work.

`models` declares the tables, `repository` holds the SQL, `postgres` PostgreSQL's own plumbing
(notifications, advisory locks, dedicated connections), `unit_of_work` the transactions and the write
steps. Nothing outside this package writes SQL.
"""

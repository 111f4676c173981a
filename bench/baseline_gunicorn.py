"""gunicorn settings of the baseline: the same worker as tasklogs (gevent, psycopg2 made cooperative)."""

worker_class = "gevent"
workers = 1
worker_connections = 2000
timeout = 60
graceful_timeout = 5
accesslog = None


def post_fork(server, worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

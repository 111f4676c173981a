"""What the tests and the benchmarks share (not shipped: setup.cfg packages only `tasklogs*`).

Modules: fakekube (the wire-level fake Kubernetes API server), scenarios (Argo workflows on it), apps (the
app bound to a test database, on a live server), gunicorn (the deployed shape in a subprocess), nginx
(Debian's nginx in front of it, configured by deploy/nginx.conf), databases (throw-away PostgreSQL
databases), processes (free ports, waiting for /healthz), tcpproxy (a cuttable TCP path), waiting
(`wait_for`), wsclient (the WebSocket client side, for one test client and for many).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The repository: where gunicorn.conf.py, wsgi.py and deploy/ are."""

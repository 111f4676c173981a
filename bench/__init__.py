"""The benchmark suite of tasklogs: `python -m bench` (see bench/README.md).

Each measurement runs the service under gunicorn's gevent worker against PostgreSQL and the fake
Kubernetes API server of the tests (`testkit.fakekube`, run inside this process), side by side with
`bench.baseline`, the seed design's naive poll-everything-per-viewer service.
"""

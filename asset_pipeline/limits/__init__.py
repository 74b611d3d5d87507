"""Provider limits shared by every run and process of a deployment (issue 16).

`gcra.py` and `aimd.py` are the pure arithmetic (no I/O); `sql_store.py` keeps their state in the
ledger database, `redis_store.py` in Redis; `shared.py` turns a store into the two limiters the
generation path uses; `limited_backend.py` applies them around a remote backend's `render`.
"""

"""What tests and benchmarks share: fake provider servers, tiny model builders, backends that count
or fail, one helper that runs the real Dagster daemon and webserver, PostgreSQL helpers and the
money-invariant checks every backend is held to.

It is installed with the project (never imported by `asset_pipeline` itself), so tests, benchmarks
and subprocesses started by them import it without `sys.path` edits.
"""

-- The ledger lives in its own database beside Dagster's.
CREATE DATABASE ledger OWNER dagster;

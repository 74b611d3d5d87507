"""Dagster resources: one file each, named after what it talks to."""

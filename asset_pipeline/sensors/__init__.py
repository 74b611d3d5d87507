"""Sensors (the run-event forwarder and failed-partition re-runs arrive with their issues)."""

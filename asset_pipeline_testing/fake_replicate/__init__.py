"""A fake Replicate server speaking its HTTP API on loopback, with scriptable faults."""

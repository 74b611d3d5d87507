"""A fake ComfyUI server for tests and benchmarks (see server.py)."""

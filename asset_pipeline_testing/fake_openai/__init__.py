"""A fake OpenAI-compatible chat-completions server for tests and benchmarks (see server.py)."""

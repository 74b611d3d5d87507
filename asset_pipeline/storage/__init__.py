"""File-system helpers shared by the image store and the summaries."""

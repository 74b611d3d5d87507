"""Pure image helpers (Pillow): decoding checks, thumbnails, previews. No file or network I/O."""

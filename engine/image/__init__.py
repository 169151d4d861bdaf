"""Pixels: image I/O, colour conversion, resizing, padding, merging."""

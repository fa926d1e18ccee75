"""avsuite.data."""

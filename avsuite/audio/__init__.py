"""avsuite.audio."""

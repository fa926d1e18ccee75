"""avsuite.losses."""

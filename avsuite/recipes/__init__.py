"""avsuite.recipes."""

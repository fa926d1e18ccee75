"""avsuite.inference."""

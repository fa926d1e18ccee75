"""avsuite.eval."""

"""avsuite.continual."""

"""Text normalisation of transcripts (ASR targets, WER) and translations (ST targets, BLEU).

Pure functions on strings, shared by the corpus builders and the ctc_ot data stages.
"""

from __future__ import annotations

import re
import unicodedata


def normalize_transcript(text: str) -> str:
    """ASR normalisation: NFKC, drop ``[annotations]``, lowercase, keep ``[a-z0-9' ]`` (accents kept)."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\[[^\]]*\]", " ", text).lower()
    text = re.sub(r"[^\w' ]+|_", " ", text)
    return re.sub(r"\s+", " ", text).strip(" '")


def normalize_translation(text: str) -> str:
    """Target-side normalisation for translation: NFKC, drop ``[annotations]`` and typographic quotes."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\[[^\]]*\]", " ", text).replace("“", "").replace("”", "").replace("’", "'")
    return re.sub(r"\s+", " ", text).strip()

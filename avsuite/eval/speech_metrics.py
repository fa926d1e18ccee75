"""ASR and speech-translation metrics: WER / CER (jiwer) and corpus BLEU / chrF (sacrebleu).

All functions take parallel lists of hypothesis and reference strings. Empty references are
skipped for WER/CER (jiwer cannot score them) and the count is returned as ``n_skipped``.
"""

from __future__ import annotations


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not refs:
        raise ValueError("no references to score")


def wer_cer(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Corpus WER and CER in percent (errors / reference words or characters)."""
    import jiwer

    _check(hyps, refs)
    pairs = [(h, r) for h, r in zip(hyps, refs) if r.strip()]
    if not pairs:
        raise ValueError("every reference is empty: cannot compute WER")
    h, r = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"wer": 100.0 * jiwer.wer(r, h), "cer": 100.0 * jiwer.cer(r, h), "n_skipped": float(len(refs) - len(pairs))}


def bleu_chrf(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Corpus BLEU (sacrebleu defaults, 13a tokenisation) and chrF."""
    import sacrebleu

    _check(hyps, refs)
    return {"bleu": float(sacrebleu.corpus_bleu(hyps, [refs]).score),
            "chrf": float(sacrebleu.corpus_chrf(hyps, [refs]).score)}


def all_metrics(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """WER, CER, BLEU and chrF of the same outputs (every ``ctc_ot`` eval writes all four)."""
    return {**wer_cer(hyps, refs), **bleu_chrf(hyps, refs)}

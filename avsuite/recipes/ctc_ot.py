"""Recipe ``ctc_ot``: siamese CTC + optimal-transport speech pre-training, then ASR / ST fine-tuning.

Stages (``task.stage``):

- ``pretrain``: speech encoder (+CTC head) and text encoder; loss ``w_ctc*CTC + w_ot*OT``
  (``loss.w_ot=0`` is plain CTC pre-training). Eval: CTC greedy transcripts -> WER/CER.
- ``asr`` / ``st``: speech encoder (``model.init_from=<pretrain>/model`` or from scratch) + Transformer
  decoder, label-smoothed cross-entropy; targets are the normalised transcript (``asr``) or the
  ``translation[task.target_lang]`` of each row (``st``). Eval: beam or greedy -> WER/CER/BLEU/chrF.

Data: manifest rows ``{"id", "audio", "text", "translation": {lang: ...}, "split"}`` (optionally
``offset``/``duration`` in seconds) streamed by the one reader (:mod:`avsuite.recipes.ctc_ot_data`):
length-bucketed batches sharded by rank, waveforms in, the fbank frontend (and SpecAugment while
training, from the global RNG that ``last.ckpt`` holds) inside the model. Bad rows never reach the
loss: empty or annotation-only transcripts, characters outside the vocabulary (``task.on_oov``),
undecodable audio, audio too short for the 4x subsampling or its CTC target, rows longer than
``data.max_seconds`` (a filter) or ``model.max_frames``: each is skipped and counted in
``metrics.json`` (``skipped_<reason>``: distinct rows met during the run), or raises an error naming
the row with ``data.strict: true``.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from avsuite.audio.frontend import FrontendConfig, kaldi_fbank
from avsuite.checkpoint import load_model_dir
from avsuite.data.datamodule import AudioDataModule
from avsuite.data.pipeline import Reader, check_sample_rate
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import ShuffledBatches
from avsuite.eval.asr import decode
from avsuite.eval.ctc_lm import LM_TEXT, CharNgramLM, read_lm_text
from avsuite.eval.speech_metrics import all_metrics
from avsuite.losses.ctc import ctc_ot_loss
from avsuite.models.seq2seq import average_state_dicts, build_model, model_config
from avsuite.models.speech import preset
from avsuite.models.text_tokenizer import tokenizer_from, train_tokenizer
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer, export_model,
                                    resume_path, write_config, write_metrics)
from avsuite.recipes.ctc_ot_data import (BadRow, SpeechDataConfig, SpeechLoader, collate, duration_skips,
                                         row_targets, split_rows)


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    stage: Literal["pretrain", "asr", "st"] = "pretrain"
    target_lang: str = "fr"
    tokenizer: Literal["char", "sentencepiece"] = "char"
    vocab_size: int = 300
    on_oov: Literal["unk", "skip", "error"] = "skip"
    #: SpecAugment inside the speech model while training (2 frequency masks <= 10 mel bins, 2 time
    #: masks <= 10 % of the frames), drawn from the global torch RNG
    spec_augment: bool = True
    #: average the weights of the last N validation points at the end of training (0 = off)
    average_last: int = 0


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    preset: str = "tiny"
    arch: Literal["conformer", "transformer"] = "conformer"
    dropout: float = 0.1
    ctc_layer: int = 0
    max_frames: int = 1500
    init_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    w_ctc: float = 1.0
    w_ot: float = 0.1
    p: int = 2
    blur: float = 0.05
    scaling: float = 0.5
    n_iters: int = 10
    debias: bool = True
    pos_weight: float = 1.0
    label_smoothing: float = 0.1
    #: fused torch.compile'd Sinkhorn transforms (1.8-5x faster per iteration on CPU; compiles once
    #: per process, ~30-60 s; needs a C++ compiler on CPU)
    compile_ot: bool = False


@dataclass(frozen=True, kw_only=True)
class DecodeConfig:
    #: pre-trained (CTC) models: greedy, or ``beam_lm`` = CTC prefix beam search (``beam`` prefixes) with a
    #: character n-gram LM of the training split's transcripts (the model dir's ``lm_text.txt``);
    #: fine-tuned (seq2seq) models: greedy or beam
    method: Literal["greedy", "beam", "beam_lm"] = "beam"
    beam: int = 5
    max_len: int = 200
    len_penalty: float = 1.0
    #: beam_lm: LM order (characters), weight of log P_lm, bonus per emitted character
    lm_order: int = 6
    lm_weight: float = 0.5
    lm_bonus: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Config:
    frontend: FrontendConfig = field(default_factory=lambda: kaldi_fbank(normalize="utterance"))
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, betas=(0.9, 0.98), warmup_steps=100))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=200, val_every_n_steps=50,
                                                                        gradient_clip_val=5.0))
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        check_sample_rate(self.data, self.frontend)


# ----------------------------------------------------------------------------- training
class CTCOTModule(L.LightningModule):
    """Thin Lightning wrapper: one loss call per step, AdamW (weight-decay groups) with warmup + cosine."""

    def __init__(self, model: torch.nn.Module, cfg: Config):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.snapshots: deque = deque(maxlen=max(cfg.task.average_last, 1))
        self._epoch_start = 0

    def losses(self, batch: dict[str, Any], train: bool) -> dict[str, Tensor]:
        """``batch`` from :func:`~avsuite.recipes.ctc_ot_data.collate` -> ``{"loss", ...}``."""
        c = self.cfg.loss
        if self.cfg.task.stage == "pretrain":
            o = self.model(batch["audio"], batch["lengths"], batch["src"], batch["src_len"])
            return ctc_ot_loss(o["log_probs"], o["speech_lengths"], batch["src"], batch["src_len"], o["speech"],
                               o["speech_mask"], o["text"], o["text_mask"], w_ctc=c.w_ctc, w_ot=c.w_ot, p=c.p,
                               blur=c.blur, scaling=c.scaling, n_iters=c.n_iters, debias=c.debias,
                               pos_weight=c.pos_weight, measure_ot=not train, compiled=c.compile_ot)
        return self.model(batch["audio"], batch["lengths"], batch["tgt"], batch["tgt_len"],
                          label_smoothing=c.label_smoothing)

    def training_step(self, batch: dict[str, Any], _: int) -> Tensor:
        out = self.losses(batch, train=True)
        if not torch.isfinite(out["loss"]):
            raise FloatingPointError(f"non-finite training loss {float(out['loss'])} on rows {batch['ids'][:4]}...")
        self.log_dict({f"train_{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(batch["ids"]))
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], _: int) -> None:
        out = self.losses(batch, train=False)
        self.log_dict({f"valid_{k}": v for k, v in out.items()}, batch_size=len(batch["ids"]), sync_dist=True)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = self.trainer.global_step

    def on_train_epoch_end(self) -> None:
        if self.trainer.global_step == self._epoch_start:
            raise ValueError("a whole epoch gave no training batch: every training row was skipped "
                             "(see the skip summary logged above)")

    def on_validation_end(self) -> None:
        if self.cfg.task.average_last > 0 and not self.trainer.sanity_checking:
            self.snapshots.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.cfg.optim, self.cfg.trainer.max_steps)


def _tokenizers(cfg: Config, rows: ManifestRows, include: list[int], init: dict[str, Any] | None) -> tuple[Any, Any]:
    """Source (CTC / text encoder) and target (decoder) tokenizers, trained on the training rows."""
    src_texts, tgt_texts = [], []
    for i in include:
        try:
            s, t = row_targets(rows[i], cfg.task.stage, cfg.task.target_lang)
        except BadRow:
            continue
        src_texts.append(s)
        tgt_texts.append(t)
    if not src_texts:
        raise ValueError(f"{cfg.data.manifest}: no usable training rows (every transcript is empty)")
    if init is not None:
        src_tok = tokenizer_from(init["config"]["tokenizer"], init["state"], "src_tokenizer.")
    else:
        src_tok = train_tokenizer(src_texts, cfg.task.tokenizer, cfg.task.vocab_size)
    if cfg.task.stage == "asr":
        return src_tok, src_tok
    tgt_tok = train_tokenizer(tgt_texts, cfg.task.tokenizer, cfg.task.vocab_size)
    return src_tok, tgt_tok


def _arch(cfg: Config):
    m = cfg.model
    return preset(m.preset, arch=m.arch, dropout=m.dropout, ctc_layer=m.ctc_layer, max_frames=m.max_frames,
                  spec_augment=cfg.task.spec_augment)


def _build(cfg: Config, src_tok: Any, tgt_tok: Any, init: dict[str, Any] | None) -> tuple[torch.nn.Module, dict]:
    stage = cfg.task.stage
    mcfg = model_config(stage, _arch(cfg), cfg.frontend, src_tok.to_config(),
                        None if stage == "pretrain" else tgt_tok.to_config(),
                        target_lang=cfg.task.target_lang if stage == "st" else None, loss=asdict(cfg.loss),
                        decode=asdict(cfg.decode))
    model = build_model(mcfg, {"src_tokenizer.sp_model": src_tok.state().get("sp_model"),
                               "tgt_tokenizer.sp_model": tgt_tok.state().get("sp_model")})
    if init is not None:
        speech = {k[len("speech."):]: v for k, v in init["state"].items() if k.startswith("speech.")}
        try:
            model.speech.load_state_dict(speech)
        except RuntimeError as exc:
            raise ValueError(f"model.init_from={cfg.model.init_from}: its speech encoder does not match "
                             f"preset {cfg.model.preset!r}/{cfg.model.arch!r}: {str(exc)[:300]}") from None
    _freeze_unused(model, cfg)
    return model, mcfg


def _freeze_unused(model: torch.nn.Module, cfg: Config) -> None:
    """Parameters outside the loss get ``requires_grad=False`` (DDP needs every trained parameter in
    the loss): the kept CTC head when fine-tuning, the text encoder when ``loss.w_ot=0``."""
    if cfg.task.stage != "pretrain" and model.speech.ctc_head is not None:
        model.speech.ctc_head.requires_grad_(False)
    if cfg.task.stage == "pretrain" and cfg.loss.w_ot == 0:
        model.text.requires_grad_(False)


def _model_state(model: torch.nn.Module) -> dict[str, Tensor]:
    state = dict(model.state_dict())
    for prefix, tok in (("src_tokenizer.", model.tokenizer), ("tgt_tokenizer.", getattr(model, "target_tokenizer", None))):
        if tok is not None and "sp_model" in tok.state():
            state[prefix + "sp_model"] = tok.state()["sp_model"]
    return state


def speech_loader(cfg: Config, src_tok: Any, tgt_tok: Any, *, check_ctc: bool = True) -> SpeechLoader:
    """The Reader load function for ``cfg`` (``check_ctc=False`` when scoring keeps rows whose CTC
    target would not fit their frames)."""
    return SpeechLoader(stage=cfg.task.stage, lang=cfg.task.target_lang, on_oov=cfg.task.on_oov, src_tok=src_tok,
                        tgt_tok=tgt_tok, frontend=cfg.frontend, max_frames=cfg.model.max_frames, check_ctc=check_ctc)


def train_sampler(cfg: Config, include: list[int]) -> ShuffledBatches:
    """Shuffled, length-bucketed global batches of the training rows ``include``."""
    d = cfg.data
    return ShuffledBatches(seed=d.seed, shuffle=d.shuffle, bucket_by_length=d.bucket_by_length, drop_last=d.drop_last,
                           include=include)


def train_reader(cfg: Config, rows: ManifestRows, include: list[int], loader: SpeechLoader, *, rank: int = 0,
                 world_size: int = 1) -> Reader:
    """The training stream of one rank (what :class:`AudioDataModule` builds inside the trainer)."""
    return Reader(rows, cfg.data, train=True, collate=collate, load=loader, sampler=train_sampler(cfg, include),
                  rank=rank, world_size=world_size)


def _skip_metrics(prefix: str, counts: Counter) -> dict[str, float]:
    return {f"{prefix}skipped_{k}": float(v) for k, v in sorted(counts.items())}


def train(cfg: Config, out: Path, *, resume: bool = False) -> dict[str, float]:
    """Train one stage; writes ``config.yaml``, ``model/``, ``last.ckpt``, ``metrics.json`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)
    L.seed_everything(cfg.trainer.seed, verbose=False)
    if cfg.task.stage == "pretrain" and cfg.model.init_from:
        raise ValueError("model.init_from is for fine-tuning stages (task.stage asr/st)")
    if not cfg.data.manifest:
        raise ValueError("data.manifest is required")
    init = None
    if cfg.model.init_from:
        state, mconf = load_model_dir(cfg.model.init_from)
        init = {"state": state, "config": mconf}
    rows, train_idx = split_rows(cfg.data.manifest, "train")
    src_tok, tgt_tok = _tokenizers(cfg, rows, train_idx, init)
    model, mcfg = _build(cfg, src_tok, tgt_tok, init)
    vrows, valid_idx = split_rows(cfg.data.valid_manifest or cfg.data.manifest, "valid",
                                  own_file=cfg.data.valid_manifest is not None)
    loader, vloader = speech_loader(cfg, src_tok, tgt_tok), speech_loader(cfg, src_tok, tgt_tok)
    dm = AudioDataModule(cfg.data, collate, train=rows, valid=vrows.select(valid_idx),
                         sampler=lambda _rows: train_sampler(cfg, train_idx), load=loader, eval_load=vloader)
    module = CTCOTModule(model, cfg)
    trainer = build_trainer(cfg.trainer, out, enable_validation=bool(valid_idx))
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(out, resume, module))
    model.cpu()
    metrics = _train_metrics(trainer, (rows, train_idx, loader), (vrows, valid_idx, vloader), cfg)
    if not trainer.is_global_zero:        # one writer of the run outputs under DDP
        return metrics
    if cfg.task.average_last > 1 and len(module.snapshots) > 1:
        model.load_state_dict(average_state_dicts(list(module.snapshots)))
    export_model(out, _model_state(model), mcfg)
    if cfg.task.stage == "pretrain":
        write_lm_text(out / "model", rows, train_idx)
    trows, test_idx = split_rows(cfg.data.test_manifest or cfg.data.manifest, "test",
                                 own_file=cfg.data.test_manifest is not None)
    if test_idx:
        test = _score(model, cfg, trows, test_idx, lm=_ctc_lm(cfg, out / "model"))
        metrics.update({f"test_{k}": v for k, v in test.items()})
        metrics.update({k: test[k] for k in ("wer", "cer", "bleu", "chrf")})
    write_metrics(out, metrics)
    return metrics


def _train_metrics(trainer: L.Trainer, train: tuple, valid: tuple, cfg: Config) -> dict[str, float]:
    """Logged values, skip counts (this rank's distinct rows + the duration filter), row counts."""
    metrics = {f"{k}": float(v) for k, v in trainer.callback_metrics.items()}
    for prefix, (rows, idx, loader) in (("", train), ("valid_", valid)):
        metrics.update(_skip_metrics(prefix, duration_skips(rows, idx, cfg.data) + loader.counts()))
    metrics.update({"n_train": float(len(train[2].used)), "n_valid": float(len(valid[2].used)),
                    "steps": float(trainer.global_step)})
    return metrics


def write_lm_text(model_dir: Path, rows: ManifestRows, include: list[int]) -> None:
    """``model_dir/lm_text.txt``: the distinct normalised transcripts of the training rows (the text
    ``decode.method=beam_lm`` trains its character LM on)."""
    texts = set()
    for i in include:
        try:
            texts.add(row_targets(rows[i], "pretrain", "")[0])
        except BadRow:
            continue
    (Path(model_dir) / LM_TEXT).write_text("".join(t + "\n" for t in sorted(texts)), encoding="utf-8")


def _ctc_lm(cfg: Config, model_dir: Path) -> CharNgramLM | None:
    """The character LM of ``decode.method=beam_lm`` (None for other methods)."""
    if cfg.decode.method != "beam_lm":
        return None
    path = Path(model_dir) / LM_TEXT
    if not path.is_file():
        raise ValueError(f"decode.method=beam_lm: {path} is missing (pre-training writes it; "
                         "fine-tuned models decode with greedy or beam)")
    return CharNgramLM(read_lm_text(path), order=cfg.decode.lm_order)


def _score(model: torch.nn.Module, cfg: Config, rows: ManifestRows, include: list[int],
           lm: CharNgramLM | None = None) -> dict[str, float]:
    """Decode rows ``include`` (``lm``: the character LM of ``beam_lm``) and compute WER/CER/BLEU/chrF
    against the stage's references, the losses and skip counts; ``model.last_outputs`` = ``[(id, hyp, ref)]``."""
    tgt_tok = getattr(model, "target_tokenizer", model.tokenizer)
    loader = speech_loader(cfg, model.tokenizer, tgt_tok, check_ctc=False)
    sampler = ShuffledBatches(shuffle=False, bucket_by_length=cfg.data.bucket_by_length, include=include)
    reader = Reader(rows, cfg.data, train=False, collate=collate, load=loader, sampler=sampler)
    module, d = CTCOTModule(model, cfg), cfg.decode
    outputs, sums = [], Counter()
    for batch in reader:
        ids, hyps, refs = decode(model, [batch], method=d.method, beam=d.beam, max_len=d.max_len,
                                 len_penalty=d.len_penalty, lm=lm, lm_weight=d.lm_weight, lm_bonus=d.lm_bonus)
        outputs += zip(ids, hyps, refs)
        with torch.no_grad():
            for k, v in module.losses(batch, train=False).items():
                sums[k] += float(v) * len(batch["ids"])
    skipped = duration_skips(rows, include, cfg.data) + loader.counts()
    if not outputs:
        raise ValueError(f"no usable evaluation rows ({dict(skipped)})")
    metrics = all_metrics([h for _, h, _ in outputs], [r for _, _, r in outputs])
    metrics.update({k: v / len(outputs) for k, v in sums.items()})
    metrics.update(_skip_metrics("", skipped))
    metrics["n_eval"] = float(len(outputs))
    model.last_outputs = outputs
    return metrics


def evaluate(model_dir: Path, data: Path, out: Path, overrides: list[str] = ()) -> dict[str, float]:
    """Decode a manifest (its ``test`` rows when it has any) with a ``ctc_ot`` model dir -> ``metrics.json``.
    ``overrides``: ``decode.<key>=value`` (e.g. ``decode.method=beam_lm``) over the model's own decode settings."""
    from avsuite.checkpoint import read_model_config
    from avsuite.models.registry import load_model

    model_dir = Path(model_dir)
    model = load_model(model_dir)
    mconf = read_model_config(model_dir)
    stage = mconf["stage"]
    cfg = Config(frontend=FrontendConfig(**mconf["frontend"]), loss=LossConfig(**mconf.get("loss", {})),
                 task=TaskConfig(stage=stage, target_lang=mconf.get("target_lang") or "fr", on_oov="unk"),
                 model=ModelConfig(max_frames=mconf["arch"]["max_frames"]),
                 decode=_decode_config(mconf.get("decode", {}), overrides))
    rows, test_idx = split_rows(data, "test")
    metrics = _score(model, cfg, rows, test_idx or list(range(len(rows))), lm=_ctc_lm(cfg, model_dir))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "hypotheses.jsonl").open("w", encoding="utf-8") as fh:
        for rid, hyp, ref in model.last_outputs:
            fh.write(json.dumps({"id": rid, "hyp": hyp, "ref": ref}, ensure_ascii=False) + "\n")
    write_metrics(out, metrics)
    return metrics


def _decode_config(saved: dict[str, Any], overrides: list[str]) -> DecodeConfig:
    """A model dir's decode settings with ``decode.<key>=value`` overrides (strict keys and types)."""
    from avsuite.config import apply_overrides, from_dict

    bad = [o for o in overrides if not o.startswith("decode.")]
    if bad:
        raise ValueError(f"eval ctc_ot takes decode.<key>=value overrides only, got {bad}")
    return from_dict(DecodeConfig, apply_overrides({"decode": dict(saved)}, list(overrides))["decode"], prefix="decode")

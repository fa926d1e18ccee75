"""Continual spoken language understanding: class-incremental intents with replay and COCONUT.

    avsuite train continual_slu --config configs/continual_slu/tiny.yaml method=coconut --out runs/coconut

Methods (same harness, scenario, memory budget and seeds):

- ``finetune``: cross-entropy on the new task's data only (lower bound);
- ``replay``: + ``memory.batch_size`` rehearsal rows from the memory in every global batch;
- ``coconut``: replay + NSPT supervised contrastive loss on the rehearsal examples (teacher = the
  model after the previous task) + multimodal audio-text loss on the new examples (+ optional KD);
- ``joint``: every task trains on the data of all tasks seen so far (upper bound).

One ``Trainer.fit`` runs the whole task sequence: one Lightning epoch = one task, whose batch plan
is ``scenario.epochs_per_task`` shuffled passes over the task's rows (+ the replay mix), read by
the one data layer (waves; the frontend runs inside the model). :class:`ContinualCallback` owns
the task boundaries: at the last batch of a task it evaluates every seen task on the test rows,
updates the replay memory (iCaRL herding on the model's hidden features), snapshots the frozen
teacher and writes ``OUT/tasks/task_<t>.json``; at the next task's start it resets the optimizer
state and restarts the LR schedule. The teacher, memory, accuracies and reader position are in
``OUT/last.ckpt`` (with the RNG states), so ``--resume`` equals an uninterrupted run. Writes
``OUT/config.yaml``, ``OUT/scenario.json``, ``OUT/metrics.json`` (avg_acc, last_acc, forgetting,
bwt, acc_after_task_<t>), ``OUT/accuracy.png``, ``OUT/model/``, CSV + TensorBoard logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite import viz
from avsuite.audio.frontend import FrontendConfig, kaldi_fbank
from avsuite.checkpoint import atomic_write_text
from avsuite.continual import Scenario, make_buffer, summarize
from avsuite.continual.schedule import TaskLR
from avsuite.data.pipeline import Reader
from avsuite.data.rows import ManifestRows
from avsuite.losses.coconut import coconut_loss
from avsuite.losses.distill import kd_loss
from avsuite.models.intent import IntentModel, IntentModelConfig
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer, export_model,
                                    check_resume_fits, lr_lambda, resume_path, write_config, write_metrics)
from avsuite.recipes.continual_slu_data import (ContinualData, Corpus, IntentDataConfig, SluBatch, build_scenario,
                                                check_setup, eval_reader, minilm_embeddings, optimizer_steps,
                                                split_corpus, stream_order)

Method = Literal["finetune", "replay", "coconut", "joint"]


@dataclass(frozen=True, kw_only=True)
class ScenarioConfig:
    #: "incremental": ``first`` classes then ``increment`` per task; "by_task": one task per row["task"]
    kind: Literal["incremental", "by_task"] = "incremental"
    first: int = 10
    increment: int = 10
    #: shuffles the sorted class list (null: sorted order); ignored when ``order`` is given
    class_seed: int | None = 0
    order: list[str] | None = None
    #: shuffled passes over a task's rows; together they are ONE Lightning epoch (one per task)
    epochs_per_task: int = 5

    def __post_init__(self) -> None:
        if self.epochs_per_task < 1:
            raise ValueError(f"epochs_per_task must be >= 1, got {self.epochs_per_task}")


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    kind: Literal["reservoir", "herding", "random_balanced"] = "herding"
    size: int = 200
    #: rehearsal rows added to every global batch
    batch_size: int = 16


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    temperature: float = 0.1
    w_nspt: float = 1.0
    w_mm: float = 0.5
    kd_weight: float = 0.0
    kd_temperature: float = 2.0


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    preset: Literal["tiny", "base"] = "tiny"
    embed_dim: int = 128
    text_encoder: Literal["hash", "minilm", "none"] = "hash"
    hash_buckets: int = 4096
    dropout: float = 0.1


@dataclass(frozen=True, kw_only=True)
class Config:
    method: Method = "coconut"
    data: IntentDataConfig = field(default_factory=IntentDataConfig)
    frontend: FrontendConfig = field(default_factory=lambda: kaldi_fbank(n_mels=40, normalize="utterance"))
    model: ModelSection = field(default_factory=ModelSection)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, weight_decay=0.01, scheduler="constant"))
    #: ``max_epochs`` must stay null (one epoch per task; see ``scenario.epochs_per_task``);
    #: ``max_steps`` > 0 caps the global batches of EACH task's plan
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=-1, max_epochs=None,
                                                                         checkpoint_every_n_steps=50))

    def __post_init__(self) -> None:
        if self.trainer.max_epochs is not None:
            raise ValueError("trainer.max_epochs must be null for continual_slu: one Lightning epoch is one task; "
                             "set the passes over each task's data with scenario.epochs_per_task")


def _make_model(cfg: Config, sc: Scenario) -> IntentModel:
    m = cfg.model
    mcfg = IntentModelConfig(preset=m.preset, num_classes=len(sc.classes), classes=sc.classes,
                             embed_dim=m.embed_dim, text_encoder=m.text_encoder, hash_buckets=m.hash_buckets,
                             dropout=m.dropout)
    return IntentModel(mcfg, cfg.frontend)


# ----------------------------------------------------------------------------- Lightning module
class ContinualModule(L.LightningModule):
    """The intent model + a frozen teacher (a snapshot after the previous task; in ``last.ckpt``,
    not in the exported model). ``training_step`` takes a :class:`SluBatch` of waves."""

    def __init__(self, cfg: Config, sc: Scenario, text_table: dict[str, Tensor] | None = None):
        super().__init__()
        self.cfg, self.sc = cfg, sc
        self.model = _make_model(cfg, sc)
        self.teacher = _make_model(cfg, sc).requires_grad_(False).eval()
        self.register_buffer("has_teacher", torch.tensor(False))
        self.index = {c: i for i, c in enumerate(sc.classes)}
        self.text_table = text_table or {}
        self.sums: dict[str, float] = {}
        self.steps = 0

    def train(self, mode: bool = True) -> "ContinualModule":
        super().train(mode)
        self.teacher.eval()                       # the teacher never drops out
        return self

    def snapshot_teacher(self) -> None:
        self.teacher.load_state_dict(self.model.state_dict())
        self.has_teacher.fill_(True)

    def text_emb(self, texts: list[str]) -> Tensor:
        if self.cfg.model.text_encoder == "minilm":
            emb = torch.stack([self.text_table[t] for t in texts]).to(self.device)
            return self.model.encode_text(sentence_emb=emb)
        return self.model.encode_text(texts)

    def losses(self, batch: SluBatch, task: int) -> dict[str, Tensor]:
        """CE on the seen classes (+ COCONUT's NSPT / multimodal terms, + KD) of one batch."""
        cfg, m = self.cfg, self.model
        y = torch.tensor([self.index[lab] for lab in batch.labels], device=self.device)
        h = m.hidden(batch.audio, batch.lengths)                          # (B, H)
        logits = m.classify(h, self.sc.num_seen(task))                    # (B, C)
        parts = {"ce": F.cross_entropy(logits, y)}
        total = parts["ce"]
        teacher = bool(self.has_teacher) and (cfg.method == "coconut" or cfg.loss.kd_weight > 0)
        if teacher:
            with torch.no_grad():
                h_t = self.teacher.hidden(batch.audio, batch.lengths)
        if cfg.method == "coconut":
            text = self.text_emb(batch.texts) if cfg.loss.w_mm > 0 else None
            c = coconut_loss(m.project(h), self.teacher.project(h_t).detach() if teacher else None, y,
                             batch.replay.to(self.device), m.audio_text(h), text, temperature=cfg.loss.temperature,
                             w_nspt=cfg.loss.w_nspt, w_mm=cfg.loss.w_mm)
            parts.update(nspt=c["nspt"], mm=c["mm"])
            total = total + c["loss"]
        if teacher and cfg.loss.kd_weight > 0:
            n_old = self.sc.num_seen(task - 1)
            with torch.no_grad():
                t_logits = self.teacher.classify(h_t)[:, :n_old]
            parts["kd"] = kd_loss(logits, t_logits, temperature=cfg.loss.kd_temperature, num_old=n_old)["kd"]
            total = total + cfg.loss.kd_weight * parts["kd"]
        parts["loss"] = total
        return parts

    def training_step(self, batch: SluBatch, batch_idx: int) -> Tensor:
        parts = self.losses(batch, self.trainer.current_epoch)
        for k, v in parts.items():
            self.log(f"train/{k}", v, prog_bar=(k == "loss"), batch_size=len(batch))
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        self.steps += 1
        return parts["loss"]

    def configure_optimizers(self) -> dict[str, Any]:
        opt = adamw_with_schedule(self.model, self.cfg.optim, 1)["optimizer"]
        sched = TaskLR(opt, lambda total: lr_lambda(self.cfg.optim, total))   # restarted at every task
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["task_sums"] = {"sums": dict(self.sums), "steps": self.steps}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("task_sums", {})
        self.sums, self.steps = dict(state.get("sums", {})), int(state.get("steps", 0))


# ----------------------------------------------------------------------------- evaluation helpers
@torch.no_grad()
def predict(model: IntentModel, reader: Reader, num_seen: int | None, device: torch.device) -> tuple[list[int], list[str]]:
    """-> (predicted class index, true label) for every readable row of ``reader``, in order."""
    was = model.training
    model.eval()
    preds, labels = [], []
    for batch in reader:
        b = batch.to(device)
        preds += model.classify(model.hidden(b.audio, b.lengths), num_seen).argmax(1).tolist()
        labels += list(batch.labels)
    model.train(was)
    return preds, labels


@torch.no_grad()
def hidden_of(model: IntentModel, reader: Reader, device: torch.device) -> tuple[list[int], Tensor]:
    """-> (row indices, hidden features ``(N, H)`` float32 on CPU) of the readable rows of ``reader``."""
    was = model.training
    model.eval()
    idx, feats = [], []
    for batch in reader:
        b = batch.to(device)
        feats.append(model.hidden(b.audio, b.lengths).float().cpu())
        idx += batch.index.tolist()
    model.train(was)
    return idx, torch.cat(feats) if feats else torch.zeros(0, 1)


class ContinualCallback(L.Callback):
    """Task boundaries; state (accuracies, memory, finished tasks) is in ``last.ckpt``."""

    def __init__(self, cfg: Config, sc: Scenario, corpus: Corpus, data: ContinualData, out: Path):
        self.cfg, self.sc, self.corpus, self.data, self.out = cfg, sc, corpus, data, out
        self.buffer = make_buffer(cfg.memory.kind, cfg.memory.size, seed=cfg.trainer.seed)
        self.R: list[list[float]] = []
        self.seen: list[float] = []
        self.R_engine: list[list[float]] = []        # the same on the held-out TTS engine (if any)
        self.seen_engine: list[float] = []
        self.started = -1                          # the last task whose first batch was prepared

    @property
    def uses_memory(self) -> bool:
        return self.cfg.method in ("replay", "coconut")

    def on_train_batch_start(self, trainer: L.Trainer, module: ContinualModule, *args: Any) -> None:
        """First batch of a task: fresh optimizer state, the LR schedule restarted over this task's
        steps. (Not ``on_train_epoch_start``: Lightning skips it when resuming from a checkpoint
        written at an epoch's last batch.)"""
        if self.started >= trainer.current_epoch:
            return
        self.started = trainer.current_epoch
        for opt in trainer.optimizers:
            opt.state.clear()
        total = optimizer_steps(trainer.num_training_batches, trainer.accumulate_grad_batches)
        trainer.lr_scheduler_configs[0].scheduler.restart(total)
        module.sums, module.steps = {}, 0

    def on_train_batch_end(self, trainer: L.Trainer, module: ContinualModule, *args: Any) -> None:
        # before ModelCheckpoint (Lightning runs checkpoint callbacks last): this step's last.ckpt
        # already holds the task's end (a resume from it starts the next task)
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self.finish_task(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: ContinualModule) -> None:
        self.finish_task(trainer, module)          # no-op unless the last batch was dropped (unreadable)

    def finish_task(self, trainer: L.Trainer, module: ContinualModule) -> None:
        task = trainer.current_epoch
        if len(self.R) > task:
            return
        with trainer.precision_plugin.forward_context():
            row, seen_acc = self.evaluate(module, task)
            if len(self.corpus.engine_idx):
                e_row, e_seen = self.evaluate(module, task, self.corpus.train, self.corpus.engine_idx)
                self.R_engine.append(e_row)
                self.seen_engine.append(e_seen)
            if self.uses_memory:
                self.update_memory(trainer, module, task)
        self.R.append(row)
        self.seen.append(seen_acc)
        module.snapshot_teacher()
        n = max(module.steps, 1)
        info = {"task": task, "acc_seen": seen_acc, "acc_per_task": row, "steps": module.steps,
                "memory": len(self.buffer), **{f"train_{k}": v / n for k, v in module.sums.items()}}
        if trainer.is_global_zero:
            atomic_write_text(self.out / "tasks" / f"task_{task}.json", json.dumps(info, indent=1))
            for lg in trainer.loggers:
                lg.log_metrics({"task/acc_seen": seen_acc, "task/index": task}, step=trainer.global_step)

    def evaluate(self, module: ContinualModule, task: int, rows: Any = None, pool: np.ndarray | None = None
                 ) -> tuple[list[float], float]:
        """Accuracy on each seen task's test rows (or ``pool`` of ``rows``) and on all seen classes."""
        c = self.corpus
        rows, pool = (c.test, c.test_idx) if rows is None else (rows, pool)
        idx = c.of_classes(rows, pool, self.sc.seen_classes(task))
        preds, labels = predict(module.model, eval_reader(rows, self.cfg.data, idx), self.sc.num_seen(task),
                                module.device)
        hits = [p == module.index[lab] for p, lab in zip(preds, labels)]
        row = []
        for j in range(task + 1):
            mine = [h for h, lab in zip(hits, labels) if lab in self.sc.tasks[j]]
            row.append(sum(mine) / max(len(mine), 1))
        return row, sum(hits) / max(len(hits), 1)

    def update_memory(self, trainer: L.Trainer, module: ContinualModule, task: int) -> None:
        c = self.corpus
        stream = stream_order(self.cfg, c.of_classes(c.train, c.train_idx, self.sc.tasks[task]), task)
        feats = None
        if self.cfg.memory.kind == "herding":
            got, feats = hidden_of(module.model, eval_reader(c.train, self.cfg.data, stream), module.device)
            stream = np.asarray(got, np.int64)                  # unreadable rows are left out
        self.buffer.update(stream.tolist(), c.labels(c.train, stream), feats)
        state = trainer.strategy.broadcast(self.buffer.state_dict())   # every rank replays the same rows
        self.buffer.load_state_dict(state)
        self.data.memory = [int(i) for i in self.buffer.ids]

    def state_dict(self) -> dict[str, Any]:
        return {"R": self.R, "seen": self.seen, "R_engine": self.R_engine, "seen_engine": self.seen_engine,
                "buffer": self.buffer.state_dict(), "started": self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.R, self.seen = [list(r) for r in state["R"]], list(state["seen"])
        self.R_engine = [list(r) for r in state.get("R_engine", [])]
        self.seen_engine = list(state.get("seen_engine", []))
        self.started = int(state["started"])
        self.buffer.load_state_dict(state["buffer"])
        self.data.memory = [int(i) for i in self.buffer.ids]


# ----------------------------------------------------------------------------- train / evaluate
def _trainer_config(cfg: Config, sc: Scenario) -> TrainerConfig:
    strategy = "ddp_find_unused_parameters_true" if cfg.trainer.strategy == "ddp" else cfg.trainer.strategy
    return replace(cfg.trainer, max_epochs=sc.num_tasks, max_steps=-1, strategy=strategy)


def train(cfg: Config, out: Path, resume: bool = False) -> dict[str, float]:
    """Run the whole task sequence; see the module docstring for what lands in ``out``."""
    out = Path(out)
    ckpt = resume_path(out, resume)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    corpus = split_corpus(cfg.data)
    sc = build_scenario(cfg.scenario, corpus)
    check_setup(cfg, sc)
    module = ContinualModule(cfg, sc)
    if ckpt:
        check_resume_fits(Path(ckpt), module)
    if cfg.method == "coconut" and cfg.model.text_encoder == "minilm":
        module.text_table = minilm_embeddings([corpus.train[int(i)].get("text", "") for i in corpus.train_idx])
    data = ContinualData(cfg, corpus, sc)
    callback = ContinualCallback(cfg, sc, corpus, data, out)
    trainer = build_trainer(_trainer_config(cfg, sc), out, callbacks=[callback], enable_validation=False,
                            reload_dataloaders_every_n_epochs=1)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, cfg)
        atomic_write_text(out / "scenario.json", json.dumps(sc.to_dict(), indent=1))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt)
    metrics = summarize(callback.R, callback.seen)
    if callback.R_engine:                           # the voice family never heard in training
        metrics.update({f"engine_{k}": v for k, v in summarize(callback.R_engine, callback.seen_engine).items()
                        if not k.startswith("acc_after")})
        metrics["engine_num_examples"] = float(len(corpus.engine_idx))
    metrics.update({f"acc_after_task_{t}": a for t, a in enumerate(callback.seen)})
    metrics["memory_size"] = float(cfg.memory.size if callback.uses_memory else 0)
    metrics["steps"] = float(trainer.global_step)
    if trainer.is_global_zero:
        write_metrics(out, metrics)
        model = module.model.float().cpu()
        export_model(out, model.state_dict(), model.export_config())
        viz.plot_accuracy_curves({cfg.method: callback.seen}, out / "accuracy.png",
                                 classes_per_task=[len(t) for t in sc.tasks])
    return metrics


def evaluate(model_dir: Path, data: Path, out: Path) -> dict[str, float]:
    """Intent accuracy of a trained model on a manifest (its ``test`` rows when it has splits)."""
    from avsuite.models.registry import load_model

    model = load_model(model_dir)
    classes = list(model.cfg.classes)
    rows = ManifestRows.from_path(data)
    splits = [r.get("split") for r in rows]
    idx = np.asarray([i for i, s in enumerate(splits) if s == "test"] if "test" in splits else range(len(rows)))
    Scenario((tuple(classes),)).check_labels((rows.label_of(int(i)) for i in idx), where=str(data))
    fe = model.frontend_cfg
    dcfg = IntentDataConfig(manifest=str(data), sample_rate=getattr(fe, "input_sample_rate", None) or fe.sample_rate)
    preds, labels = predict(model, eval_reader(rows, dcfg, idx), None, torch.device("cpu"))
    index = {c: i for i, c in enumerate(classes)}
    hits = sum(p == index[lab] for p, lab in zip(preds, labels))
    metrics = {"accuracy": hits / max(len(preds), 1), "num_examples": len(preds), "num_classes": len(classes)}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_metrics(Path(out), metrics)
    return metrics

"""Continual spoken language understanding: class-incremental intents with replay and COCONUT.

    avsuite train continual_slu --config configs/continual_slu/tiny.yaml method=coconut --out runs/coconut

Methods (same harness, scenario, memory budget and seeds):

- ``finetune``: cross-entropy on the new task's data only (lower bound);
- ``replay``: + a rehearsal mini-batch from the memory in every step;
- ``coconut``: replay + NSPT supervised contrastive loss on the rehearsal examples (teacher = the
  model after the previous task) + multimodal audio-text loss on the new examples (+ optional KD);
- ``joint``: every task trains on the data of all tasks seen so far (upper bound).

Data goes through the one pipeline once (decode, centre crop); the frontend (parameter-free, inside
the model) turns each clip into features that are cached in memory for the whole run, so training
cost is the encoder only. The loop is a plain PyTorch loop (the task sequence, teacher snapshots and
memory updates do not map onto one ``Trainer.fit``); its state - task, step, model, optimizer,
schedule, teacher, memory, RNG, accuracies so far - is saved atomically to ``OUT/last.ckpt``
every ``trainer.checkpoint_every_n_steps`` steps and at each task end; ``--resume`` continues at
the same task and step with the same memory. Writes ``OUT/config.yaml``, ``OUT/tasks/task_<t>.json``,
``OUT/metrics.json`` (avg_acc, last_acc, forgetting, bwt, ...), ``OUT/accuracy.png``, ``OUT/model/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite import viz
from avsuite.audio.frontend import FrontendConfig, kaldi_fbank
from avsuite.checkpoint import atomic_path, atomic_write_text, load_ckpt
from avsuite.continual import Scenario, ScenarioError, make_buffer, summarize
from avsuite.continual.replay import ReplayBuffer
from avsuite.data.batches import pad_right
from avsuite.data.manifest import read_manifest
from avsuite.data.pipeline import DataConfig
from avsuite.losses.coconut import coconut_loss
from avsuite.losses.distill import kd_loss
from avsuite.models.intent import IntentModel, IntentModelConfig
from avsuite.recipes.common import OptimConfig, TrainerConfig, export_model, lr_lambda, write_config, write_metrics
from avsuite.recipes.continual_slu_data import (Corpus, split_corpus, build_scenario, check_setup, featurize,
                                                minilm_embeddings)

log = logging.getLogger(__name__)
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


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    kind: Literal["reservoir", "herding", "random_balanced"] = "herding"
    size: int = 200
    #: rehearsal examples added to every training step
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
    data: DataConfig = field(default_factory=lambda: DataConfig(manifest="data/intents/manifest.jsonl",
                                                               max_seconds=4.0, batch_size=32))
    frontend: FrontendConfig = field(default_factory=lambda: kaldi_fbank(n_mels=40, normalize="utterance"))
    model: ModelSection = field(default_factory=ModelSection)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, weight_decay=0.01, scheduler="constant"))
    #: ``max_epochs`` = epochs per task; ``max_steps`` > 0 caps the steps of each task
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=-1, max_epochs=5,
                                                                         checkpoint_every_n_steps=50))


# ----------------------------------------------------------------------------- training state
@dataclass
class RunState:
    task: int = 0
    step: int = 0
    R: list[list[float]] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)


def _seed_of(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=6).digest(), "little")


def task_plan(ids: list[str], batch_size: int, epochs: int, seed: int, task: int, max_steps: int) -> list[list[str]]:
    """Deterministic batches of one task: ``epochs`` shuffled passes over ``ids``."""
    plan = []
    for ep in range(epochs):
        g = torch.Generator().manual_seed(_seed_of(seed, task, ep))
        perm = torch.randperm(len(ids), generator=g).tolist()
        plan += [[ids[i] for i in perm[k:k + batch_size]] for k in range(0, len(perm), batch_size)]
    return plan[:max_steps] if max_steps and max_steps > 0 else plan


def sample_memory(buffer: ReplayBuffer, k: int, seed: int, task: int, step: int) -> list[str]:
    if len(buffer) == 0:
        return []
    g = torch.Generator().manual_seed(_seed_of(seed, task, step, "mem"))
    return [buffer.ids[i] for i in torch.randperm(len(buffer), generator=g)[:k].tolist()]



class _Stop(Exception):
    """Raised by the test hook ``_stop_at`` to simulate an interruption (after a checkpoint)."""


def _device(cfg: TrainerConfig) -> torch.device:
    if cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _make_model(cfg: Config, sc: Scenario) -> IntentModel:
    m = cfg.model
    mcfg = IntentModelConfig(preset=m.preset, num_classes=len(sc.classes), classes=sc.classes,
                             embed_dim=m.embed_dim, text_encoder=m.text_encoder, hash_buckets=m.hash_buckets,
                             dropout=m.dropout)
    return IntentModel(mcfg, cfg.frontend)


class Harness:
    """One continual run: model, teacher, memory, optimizer; ``run_task`` trains then evaluates a task."""

    def __init__(self, cfg: Config, sc: Scenario, corpus: Corpus, out: Path, device: torch.device):
        self.cfg, self.sc, self.corpus, self.out, self.device = cfg, sc, corpus, out, device
        self.index = {c: i for i, c in enumerate(sc.classes)}
        self.rows = {r["id"]: r for r in corpus.train + corpus.test}
        self.model = _make_model(cfg, sc).to(device)
        self.teacher: IntentModel | None = None
        self.buffer = make_buffer(cfg.memory.kind, cfg.memory.size, seed=cfg.trainer.seed)
        self.state = RunState()
        self.opt: torch.optim.Optimizer | None = None
        self.sched: Any = None

    # -------------------------------------------------------------- per task
    def train_ids(self, task: int) -> list[str]:
        classes = set(self.sc.seen_classes(task) if self.cfg.method == "joint" else self.sc.tasks[task])
        return [r["id"] for r in self.corpus.train if r["label"] in classes]

    def plan(self, task: int) -> list[list[str]]:
        t = self.cfg.trainer
        return task_plan(self.train_ids(task), self.cfg.data.batch_size, t.max_epochs or 1, t.seed, task, t.max_steps)

    def new_optimizer(self, n_steps: int) -> None:
        o = self.cfg.optim
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay,
                                     betas=o.betas, eps=o.eps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(o, n_steps))

    def batch(self, ids: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        feats, lens = pad_right([self.corpus.feats[i] for i in ids])
        y = torch.tensor([self.index[self.rows[i]["label"]] for i in ids])
        return feats.to(self.device), lens.to(self.device), y.to(self.device)

    def text_emb(self, ids: list[str]) -> Tensor:
        texts = [self.rows[i].get("text", "") for i in ids]
        if self.cfg.model.text_encoder == "minilm":
            emb = torch.stack([self.corpus.text_emb[t] for t in texts]).to(self.device)
            return self.model.encode_text(sentence_emb=emb)
        return self.model.encode_text(texts)

    def loss(self, new_ids: list[str], mem_ids: list[str], task: int) -> dict[str, Tensor]:
        cfg, ids = self.cfg, new_ids + mem_ids
        feats, lens, y = self.batch(ids)
        rehearsal = torch.tensor([False] * len(new_ids) + [True] * len(mem_ids), device=self.device)
        h = self.model.hidden(feats, lens)
        logits = self.model.classify(h, self.sc.num_seen(task))
        parts = {"ce": F.cross_entropy(logits, y)}
        total = parts["ce"]
        need_teacher = self.teacher is not None and (cfg.method == "coconut" or cfg.loss.kd_weight > 0)
        if need_teacher:
            with torch.no_grad():
                h_t = self.teacher.hidden(feats, lens)
        if cfg.method == "coconut":
            text = self.text_emb(ids) if cfg.loss.w_mm > 0 else None
            c = coconut_loss(self.model.project(h), self.teacher.project(h_t).detach() if need_teacher else None,
                             y, rehearsal, self.model.audio_text(h), text, temperature=cfg.loss.temperature,
                             w_nspt=cfg.loss.w_nspt, w_mm=cfg.loss.w_mm)
            parts.update(nspt=c["nspt"], mm=c["mm"])
            total = total + c["loss"]
        if need_teacher and cfg.loss.kd_weight > 0:
            n_old = self.sc.num_seen(task - 1)
            with torch.no_grad():
                t_logits = self.teacher.classify(h_t)[:, :n_old]
            parts["kd"] = kd_loss(logits, t_logits, temperature=cfg.loss.kd_temperature, num_old=n_old)["kd"]
            total = total + cfg.loss.kd_weight * parts["kd"]
        parts["loss"] = total
        return parts

    def frozen_copy(self, state: dict[str, Tensor]) -> IntentModel:
        """A frozen, eval-mode model with ``state`` (the teacher); the frontend is not deep-copyable."""
        teacher = _make_model(self.cfg, self.sc).to(self.device)
        teacher.load_state_dict(state)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher.eval()

    def uses_memory(self) -> bool:
        return self.cfg.method in ("replay", "coconut")

    # -------------------------------------------------------------- evaluation + memory
    @torch.no_grad()
    def hidden_of(self, ids: list[str], bs: int = 128) -> Tensor:
        self.model.eval()
        out = [self.model.hidden(*self.batch(ids[k:k + bs])[:2]) for k in range(0, len(ids), bs)]
        return torch.cat(out).cpu()

    @torch.no_grad()
    def predict(self, ids: list[str], num_seen: int, bs: int = 128) -> list[int]:
        self.model.eval()
        preds = []
        for k in range(0, len(ids), bs):
            feats, lens, _ = self.batch(ids[k:k + bs])
            preds += self.model.classify(self.model.hidden(feats, lens), num_seen).argmax(1).tolist()
        return preds

    def evaluate_task(self, task: int) -> tuple[list[float], float]:
        """Accuracy on each seen task's test data and on all seen classes."""
        seen = set(self.sc.seen_classes(task))
        test = [r for r in self.corpus.test if r["label"] in seen]
        preds = self.predict([r["id"] for r in test], self.sc.num_seen(task))
        hits = [p == self.index[r["label"]] for p, r in zip(preds, test)]
        row = []
        for j in range(task + 1):
            mine = [h for h, r in zip(hits, test) if r["label"] in self.sc.tasks[j]]
            row.append(sum(mine) / max(len(mine), 1))
        return row, sum(hits) / max(len(hits), 1)

    def update_memory(self, task: int) -> None:
        ids = [r["id"] for r in self.corpus.train if r["label"] in self.sc.tasks[task]]
        g = torch.Generator().manual_seed(_seed_of(self.cfg.trainer.seed, task, "stream"))
        ids = [ids[i] for i in torch.randperm(len(ids), generator=g).tolist()]
        feats = self.hidden_of(ids) if self.cfg.memory.kind == "herding" else None
        self.buffer.update(ids, [self.rows[i]["label"] for i in ids], feats)

    # -------------------------------------------------------------- checkpoint
    def save(self) -> None:
        ck = {"task": self.state.task, "step": self.state.step, "R": self.state.R, "seen": self.state.seen,
              "model": self.model.state_dict(), "teacher": self.teacher.state_dict() if self.teacher else None,
              "buffer": self.buffer.state_dict(), "rng": torch.get_rng_state(),
              "opt": self.opt.state_dict() if self.opt else None,
              "sched": self.sched.state_dict() if self.sched else None, "method": self.cfg.method}
        with atomic_path(self.out / "last.ckpt") as tmp:
            torch.save(ck, tmp)

    def load(self, path: Path) -> None:
        ck = load_ckpt(path)
        if ck.get("method") != self.cfg.method:
            raise ScenarioError(f"{path} was written by method {ck.get('method')!r}, not {self.cfg.method!r}")
        self.state = RunState(task=ck["task"], step=ck["step"], R=ck["R"], seen=ck["seen"])
        self.model.load_state_dict(ck["model"])
        if ck["teacher"] is not None:
            self.teacher = self.frozen_copy(ck["teacher"])
        self.buffer.load_state_dict(ck["buffer"])
        torch.set_rng_state(ck["rng"])
        if ck["opt"] is not None and self.state.task < self.sc.num_tasks:
            self.new_optimizer(len(self.plan(self.state.task)))
            self.opt.load_state_dict(ck["opt"])
            self.sched.load_state_dict(ck["sched"])

    # -------------------------------------------------------------- the loop
    def run_task(self, task: int, stop_at: tuple[int, int] | None = None) -> dict[str, float]:
        cfg, st = self.cfg, self.state
        plan = self.plan(task)
        if st.step == 0 or self.opt is None:
            self.new_optimizer(len(plan))
        every = max(1, cfg.trainer.checkpoint_every_n_steps)
        sums: dict[str, float] = {}
        for step in range(st.step, len(plan)):
            self.model.train()
            mem = (sample_memory(self.buffer, cfg.memory.batch_size, cfg.trainer.seed, task, step)
                   if self.uses_memory() and task > 0 else [])
            parts = self.loss(plan[step], mem, task)
            self.opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if cfg.trainer.gradient_clip_val:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.trainer.gradient_clip_val)
            self.opt.step()
            self.sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            st.step = step + 1
            if st.step % every == 0 and st.step < len(plan):
                self.save()
                if stop_at == (task, st.step):
                    raise _Stop()
        row, seen_acc = self.evaluate_task(task)
        if self.uses_memory():
            self.update_memory(task)
        st.R.append(row)
        st.seen.append(seen_acc)
        self.teacher = self.frozen_copy(self.model.state_dict())
        st.task, st.step, self.opt, self.sched = task + 1, 0, None, None
        self.save()
        n = max(len(plan) - 0, 1)
        return {"task": task, "acc_seen": seen_acc, "acc_per_task": row, "steps": len(plan),
                "memory": len(self.buffer), **{f"train_{k}": v / n for k, v in sums.items()}}


def _load_corpus(cfg: Config, frontend: torch.nn.Module) -> tuple[Corpus, Scenario]:
    train_rows, test_rows = split_corpus(cfg.data)
    sc = build_scenario(cfg.scenario, train_rows, test_rows)
    check_setup(cfg, sc)
    feats = featurize(train_rows + test_rows, cfg.data, frontend)
    keep = lambda rows: [r for r in rows if r["id"] in feats]  # noqa: E731  (unreadable audio is skipped)
    corpus = Corpus(keep(train_rows), keep(test_rows), feats)
    if cfg.method == "coconut" and cfg.model.text_encoder == "minilm":
        corpus.text_emb = minilm_embeddings([r.get("text", "") for r in corpus.train])
    return corpus, sc


def train(cfg: Config, out: Path, resume: bool = False, *, _stop_at: tuple[int, int] | None = None) -> dict[str, float]:
    """Run the whole task sequence; see the module docstring for what lands in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.trainer.seed)
    if resume and not (out / "last.ckpt").is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {out / 'last.ckpt'}; start without --resume")
    write_config(out, cfg)
    device = _device(cfg.trainer)
    probe = _make_model(cfg, Scenario((("_",),)))
    corpus, sc = _load_corpus(cfg, probe.frontend)
    h = Harness(cfg, sc, corpus, out, device)
    if resume:
        h.load(out / "last.ckpt")
    atomic_write_text(out / "scenario.json", json.dumps(sc.to_dict(), indent=1))
    for task in range(h.state.task, sc.num_tasks):
        info = h.run_task(task, _stop_at)
        atomic_write_text(out / "tasks" / f"task_{task}.json", json.dumps(info, indent=1))
        log.info("task %d/%d: seen-class accuracy %.3f", task + 1, sc.num_tasks, info["acc_seen"])
    metrics = summarize(h.state.R, h.state.seen)
    metrics.update({f"acc_after_task_{t}": a for t, a in enumerate(h.state.seen)})
    metrics["memory_size"] = float(cfg.memory.size if h.uses_memory() else 0)
    write_metrics(out, metrics)
    export_model(out, h.model.state_dict(), h.model.export_config())
    viz.plot_accuracy_curves({cfg.method: h.state.seen}, out / "accuracy.png",
                             classes_per_task=[len(t) for t in sc.tasks])
    return metrics


def evaluate(model_dir: Path, data: Path, out: Path) -> dict[str, float]:
    """Intent accuracy of a trained model on a manifest (its ``test`` rows when it has splits)."""
    from avsuite.models.registry import load_model

    model = load_model(model_dir)
    classes = list(model.cfg.classes)
    rows = read_manifest(data)
    if any(r.get("split") == "test" for r in rows):
        rows = [r for r in rows if r.get("split") == "test"]
    Scenario((tuple(classes),)).check_labels((r.get("label") for r in rows), where=str(data))
    feats = featurize(rows, DataConfig(manifest=str(data), max_seconds=4.0, batch_size=32), model.frontend)
    index = {c: i for i, c in enumerate(classes)}
    hits, n = 0, 0
    with torch.no_grad():
        ids = [r["id"] for r in rows if r["id"] in feats]
        labels = {r["id"]: r["label"] for r in rows}
        for k in range(0, len(ids), 128):
            f, lens = pad_right([feats[i] for i in ids[k:k + 128]])
            pred = model.classify(model.hidden(f, lens)).argmax(1).tolist()
            hits += sum(p == index[labels[i]] for p, i in zip(pred, ids[k:k + 128]))
            n += len(pred)
    metrics = {"accuracy": hits / max(n, 1), "num_examples": n, "num_classes": len(classes)}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_metrics(Path(out), metrics)
    return metrics

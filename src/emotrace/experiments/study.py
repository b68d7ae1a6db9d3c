"""Studies as data: a YAML file lists the runs to compare, the budget they share and the kind of
report to write. Runs are cached by their full config, so studies share identical runs and a
re-run only trains what is missing."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emotrace.errors import ConfigError
from emotrace.training.config import TrainConfig, load_config

BUDGET_KEYS = ("epochs", "image_size", "subset", "seeds")
FIRST_SEED = 42  # seed i of a study is FIRST_SEED + i: the first seed is the papers' 42
SETTING_KEYS = ("data",)
DISTILLATION_KEYS = ("teacher", "distill_weight", "distill_temperature")  # not budget, but the same for every run of a study


@dataclass
class RunSpec:
    """One run of a study (one configuration, one seed): its name, a label for tables and its
    full training config."""

    name: str
    label: str
    config: TrainConfig
    study: str
    variant: str = "official"
    requires_weights: str | None = None
    uses_last_epoch: bool = False
    sweep: str | None = None     # candidates sharing a sweep: the best on PublicTest is kept
    final: bool = False          # a sweep candidate that is also a final configuration itself
    role: str | None = None      # e.g. "compute-matched" (the ensemble study's baseline)

    @property
    def reads_test(self) -> bool:
        """Whether this run is measured on PrivateTest as soon as it exists: a final
        configuration. A sweep candidate is read only once chosen on PublicTest."""
        return self.sweep is None or self.final

    @property
    def key(self) -> str:
        """Short hash of the config: the run's cache identity."""
        values = self.config.to_dict()
        if values["teacher"] is None:  # distillation settings matter only with a teacher (and
            for name in DISTILLATION_KEYS:  # leaving them out keeps older runs' keys)
                values.pop(name)
        if 0 < values["freeze_epochs"] < values["epochs"]:
            # runs that reach phase 2 trained their unfrozen batch norm in inference mode before
            # issue 28's fix: a new identity, so no cached run from before the fix is reused
            values["phase2_batch_norm"] = "train"
        blob = json.dumps(values, sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    @property
    def seed(self) -> int:
        return self.config.seed

    def run_dir(self, runs_root: Path) -> Path:
        return runs_root / f"{self.name}-s{self.seed}-{self.key}"


@dataclass
class Study:
    name: str
    title: str
    question: str
    kind: str
    budget: dict[str, Any]
    runs: list[RunSpec]
    options: dict[str, Any] = field(default_factory=dict)


def list_studies() -> list[str]:
    folder = resources.files("emotrace.experiments") / "studies"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _study_file(name: str) -> dict[str, Any]:
    path = Path(str(resources.files("emotrace.experiments") / "studies" / f"{name}.yaml"))
    if not path.is_file():
        raise ConfigError(f"unknown study {name!r}; available: {', '.join(list_studies())}")
    return yaml.safe_load(path.read_text())


def _run_specs(study: str, values: dict[str, Any], entry: dict[str, Any],
               budget: dict[str, Any], weights: dict[str, str]) -> list[RunSpec]:
    """One :class:`RunSpec` per seed of a study entry. Seeds change the weights' init, the batch
    order and the augmentation; the data (split and subset) stay the same for every seed."""
    budget = dict(budget)
    seeds = int(budget.pop("seeds", 1))
    if seeds < 1:
        raise ConfigError(f"study {study}: seeds must be at least 1, not {seeds}")
    config = load_config(values["base"], **budget, subset_splits="train", threads=None,
                         measure_train=True)
    overrides = dict(entry.get("config", {}))
    needs = entry.get("requires_weights")
    if needs and overrides.get("pretrained") and needs in weights:
        overrides["weights"] = weights[needs]
    config = config.updated(**overrides)
    return [RunSpec(name=entry["name"], label=entry.get("label", entry["name"]),
                    config=config.updated(seed=FIRST_SEED + i), study=study,
                    variant=entry.get("variant", "official"), requires_weights=needs,
                    uses_last_epoch=entry.get("uses_last_epoch", False),
                    sweep=entry.get("sweep"), final=entry.get("final", False),
                    role=entry.get("role"))
            for i in range(seeds)]


def load_study(name: str, budget: dict[str, Any] | None = None,
               weights: dict[str, str] | None = None) -> Study:
    """Study ``name`` with its budget overridden by ``budget`` (epochs, image_size, subset, seeds) and
    user weight files (``{"resnet50": "r50.pth"}``) for backbones that have none here."""
    values = _study_file(name)
    overrides = {k: v for k, v in (budget or {}).items() if v is not None}
    unknown = set(overrides) - set(BUDGET_KEYS) - set(SETTING_KEYS)
    if unknown:
        raise ConfigError(f"unknown budget option(s) {sorted(unknown)}; use "
                         f"{BUDGET_KEYS + SETTING_KEYS}")
    study_budget = {**values["budget"], **overrides}  # passed to every run's config
    runs = []
    for entry in values["runs"]:
        if "ref" in entry:  # another study's run, trained once and shared
            other, _, run_name = entry["ref"].partition("/")
            # with this study's seeds: every seed of this study needs its shared runs
            source = load_study(other, {"seeds": study_budget.get("seeds", 1), **overrides},
                                weights)
            found = [run for run in source.runs if run.name == run_name]
            if not found:
                raise ConfigError(f"study {name}: {entry['ref']} names no run of study {other}")
            runs.extend(replace(run, label=entry.get("label", run.label), role=entry.get("role"),
                                sweep=entry.get("sweep"), final=entry.get("final", False))
                        for run in found)
        else:
            runs.extend(_run_specs(name, values, entry, study_budget, weights or {}))
    options = {k: v for k, v in values.items()
               if k not in ("title", "question", "kind", "base", "budget", "runs")}
    return Study(name, values["title"], " ".join(values["question"].split()), values["kind"],
                 study_budget, runs, options)


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "finished.json").is_file()


def train_run(run: RunSpec, runs_root: Path, progress_bar: bool = True) -> Path:
    """Train ``run`` unless a finished run with the same config is cached; resumes a run that
    was interrupted. Returns the run folder."""
    run_dir = run.run_dir(runs_root)
    if is_finished(run_dir):
        return run_dir
    started = time.time()
    from emotrace.training.fit import train
    train(run.config, run_dir, resume=True, progress_bar=progress_bar)
    (run_dir / "finished.json").write_text(json.dumps(
        {"study": run.study, "name": run.name, "seed": run.seed, "device": training_device(),
         "wall_s_this_session": round(time.time() - started)}))
    return run_dir


def training_device() -> str:
    """What trains here: the GPU's name, or the CPU and its core count."""
    import os
    import platform

    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), no GPU"

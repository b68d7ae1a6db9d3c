"""``emotrace study --ray``: each run of a study that is not cached yet becomes a Ray Tune trial
(one run per trial, with its share of CPUs and a GPU when the node has one). Runs are written to
the study's runs folder, which every node must reach (``--storage``); finished runs are reused
exactly as locally, and the report is written by the driver from the same run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emotrace.distributed.ray_predict import ray_cluster
from emotrace.errors import EmotraceError
from emotrace.experiments.study import RunSpec, is_finished, train_run


def _trial(config: dict[str, Any]) -> None:
    train_run(config["run"], Path(config["runs_root"]), progress_bar=False)


def train_runs_on_ray(runs: list[RunSpec], runs_root: Path, address: str | None = None,
                      name: str = "study") -> list[str]:
    """Train the runs that are not finished as Tune trials; returns the names trained."""
    runs_root = Path(runs_root).resolve()
    missing = [run for run in runs if not is_finished(run.run_dir(runs_root))]
    if not missing:
        return []
    with ray_cluster(address) as ray:
        from ray import tune

        resources = ray.cluster_resources()
        per_trial = {"cpu": max(1, int(resources.get("CPU", 1)) // len(missing)),
                     "gpu": 1 if resources.get("GPU", 0) >= 1 else 0}
        tuner = tune.Tuner(
            tune.with_resources(_trial, per_trial),
            param_space={"run": tune.grid_search(missing), "runs_root": str(runs_root)},
            # a trial's worker imports torch, Lightning and torchvision (10 s here): the next
            # trial reuses it instead of starting a fresh one
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=str(runs_root / "tune"),
                                      verbose=0))
        results = tuner.fit()
        failed = [result.error for result in results if result.error]
    if failed:
        raise EmotraceError(f"{len(failed)} run(s) of the study failed on Ray: {failed[0]}")
    return [run.name for run in missing]

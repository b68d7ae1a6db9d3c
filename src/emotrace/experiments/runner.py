"""``run_study``: train what is missing, measure, and write the study's report."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from emotrace.experiments import report
from emotrace.experiments.full_ensemble import ensemble_card
from emotrace.experiments.results import RunResult, collect
from emotrace.experiments.study import RunSpec, Study, load_study, train_run


def _runnable(study: Study) -> tuple[list[RunSpec], list[str]]:
    """Runs that can train here, and a line for each one that cannot (missing weights)."""
    runs, skipped = [], []
    for run in study.runs:
        if run.requires_weights and run.config.pretrained and not run.config.weights:
            skipped.append(f"{run.label} and its random-init twin: no ImageNet weights for "
                           f"{run.requires_weights} on this machine; run "
                           f"`emotrace study {study.name} --weights {run.requires_weights}=FILE` "
                           "to include them")
        elif run.requires_weights and not run.config.pretrained and not any(
                r.requires_weights == run.requires_weights and r.config.weights
                for r in study.runs):
            continue  # the twin's line above says why
        else:
            runs.append(run)
    return runs, list(dict.fromkeys(skipped))  # one line per configuration, not per seed


def _ensembles(study: Study, results: list[RunResult],
               runs_root: Path) -> dict[str, list[dict[str, Any]]]:
    """Per weighting scheme, one ensemble per seed of that seed's members."""
    ensembles: dict[str, list[dict[str, Any]]] = {}
    results = [r for r in results if not r.spec.role]  # baselines are not members
    seeds = sorted({r.seed for r in results})
    for scheme in study.options.get("schemes", ["rank", "equal"]):
        for seed in seeds:
            members = [r for r in results if r.seed == seed]
            key = hashlib.sha1("".join(r.spec.key for r in members).encode()).hexdigest()[:8]
            path = runs_root / "ensembles" / f"{study.name}-{scheme}-s{seed}-{key}.onnx"
            card = ensemble_card([r.run_dir for r in members], path, scheme,
                                 f"ensemble-{scheme}-seed{seed}", members[0].spec.config.data)
            ensembles.setdefault(scheme, []).append({**card, "seed": seed})
    return ensembles


def _full_data_section(study: Study, runs_root: Path) -> dict[str, Any] | None:
    """The ensembles of models trained on the full training split (the study's ``full_data``
    members: shipped names or .onnx files), measured for the report's paired tests."""
    from emotrace.experiments.full_ensemble import full_data_ensemble

    options = study.options.get("full_data")
    if not options:
        return None
    return full_data_ensemble(options["members"], runs_root / "ensembles",
                              study.runs[0].config.data, options.get("schemes", ["equal"]),
                              flip=options.get("flip", False))


def measure(runs: list[RunSpec], runs_root: Path) -> list[RunResult]:
    """Every run measured on PublicTest; PrivateTest only for final configurations: runs that are
    not sweep candidates, candidates marked final, and each sweep's choice on PublicTest."""
    results = [collect(run, runs_root, ("val", "test") if run.reads_test else ("val",))
               for run in runs]
    chosen = {g.name for g in report.sweep_choices(report.group_runs(results)).values()}
    return [collect(r.spec, runs_root) if r.spec.name in chosen and not r.spec.reads_test else r
            for r in results]


def run_study(name: str, budget: dict[str, Any] | None = None,
              weights: dict[str, str] | None = None, runs_root: str | Path = "runs/studies",
              out_root: str | Path = "experiments", command: str | None = None,
              progress_bar: bool = True, ray_address: str | None = None) -> Path:
    """Train the study's missing runs (cached by config; interrupted runs resume), measure them
    and write ``out_root/<name>/report.md``, ``results.json`` and ``figures/``. With
    ``ray_address`` (``""`` for a local Ray) the missing runs are Ray Tune trials."""
    study = load_study(name, budget, weights)
    runs_root, out = Path(runs_root), Path(out_root) / name
    runs, skipped = _runnable(study)
    if ray_address is not None:
        from emotrace.distributed.ray_tune import train_runs_on_ray

        train_runs_on_ray(runs, runs_root, ray_address or None, name=f"study-{name}")
    for run in runs:  # with Ray: only checks that every run is cached
        train_run(run, runs_root, progress_bar=progress_bar)
    results = measure(runs, runs_root)
    command = command or f"emotrace study {name}"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if study.kind == "transfer":
        text, data = report.transfer_report(study, results, command, out)
    elif study.kind == "init":
        text, data = report.init_report(study, results, command, out, skipped)
    elif study.kind == "ladder":
        text, data = report.ladder_report(study, results, command, out)
    elif study.kind == "ensemble":
        ensembles = _ensembles(study, results, runs_root)
        text, data = report.ensemble_report(study, results, command, out, ensembles,
                                            _full_data_section(study, runs_root))
    else:
        raise ValueError(f"study {name}: unknown kind {study.kind!r}")
    data = {"study": name, "title": study.title, "command": command, "budget": study.budget,
            **data}
    return report.write_outputs(out, text, data)

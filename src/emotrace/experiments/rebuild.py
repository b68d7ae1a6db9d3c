"""Write a study's report again from its ``results.json`` alone: no training, no run folders, no
model files. Every number is recomputed from the saved per-seed histories, metrics and per-image
predictions (tests, Holm's correction, bootstrap intervals); Grad-CAM figures and the dlib timing
are the earlier report's. Runs that no longer match the study's definition (a fix changed what
the same config trains) are marked stale.

Run: ``python -m emotrace.experiments.rebuild NAME [NAME ...] [--out experiments]``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from emotrace.experiments import report
from emotrace.experiments.results import RunResult
from emotrace.experiments.study import RunSpec, Study, load_study
from emotrace.training.config import TrainConfig

#: why runs of these study configurations made before a fix no longer match their definition
FIXES = {
    "phase2_batch_norm": (
        "These runs were made before issue 28's fix: in phase 2 the unfrozen blocks' batch norm "
        "stayed in inference mode (running statistics kept from ImageNet, only scale and shift "
        "trained), although the recipe says train_bn=True."),
}


def _stale(config: TrainConfig) -> str:
    if 0 < config.freeze_epochs < config.epochs:
        return FIXES["phase2_batch_norm"]
    return ""


def saved_results(data: dict[str, Any], study: Study) -> list[RunResult]:
    """RunResults from a study's ``results.json``. Label and report semantics (sweep, role,
    variant, last epoch kept) come from the study's current definition when it still has the
    configuration; the config is the one that ran."""
    specs = {run.name: run for run in study.runs}
    results = []
    for configuration in data["configurations"]:
        for saved in configuration["per_seed"]:
            config = TrainConfig(**saved["config"])
            current = specs.get(saved["name"])
            spec = RunSpec(name=saved["name"],
                           label=current.label if current else saved["label"], config=config,
                           study=study.name,
                           variant=current.variant if current else config.split,
                           uses_last_epoch=saved["checkpoint"] == "last",
                           sweep=current.sweep if current else None,
                           final=current.final if current else False,
                           role=current.role if current else None)
            results.append(RunResult(spec, Path(saved["run_dir"]), saved["history"],
                                     saved["params"], saved["frozen_params"], saved["metrics"],
                                     saved["predictions"], saved["device"],
                                     saved["external_params"], _stale(config)))
    return results


def _face_seconds(data: dict[str, Any], old_report: Path) -> float | None:
    if data.get("face_descriptor_s_per_face"):
        return data["face_descriptor_s_per_face"]
    found = re.search(r"\((\d+) ms per face", old_report.read_text()) if old_report.exists() else None
    return int(found.group(1)) / 1000 if found else None


def rebuild(name: str, out_root: str | Path = "experiments") -> Path:
    """Write ``out_root/name/report.md`` and ``results.json`` again from that ``results.json``."""
    out = Path(out_root) / name
    data = json.loads((out / "results.json").read_text())
    study = load_study(name)
    study.budget = data["budget"]  # the budget these runs had
    results = saved_results(data, study)
    command = data["command"]
    if study.kind == "transfer":
        text, new = report.transfer_report(study, results, command, out, data.get("gradcam"))
    elif study.kind == "init":
        text, new = report.init_report(study, results, command, out, data.get("skipped", []),
                                       _face_seconds(data, out / "report.md"))
    elif study.kind == "ladder":
        text, new = report.ladder_report(study, results, command, out)
    elif study.kind == "ensemble":
        full = {k: v for k, v in data.get("full_data", {}).items()
                if k not in ("comparisons", "tests_vs_chosen_member")}
        text, new = report.ensemble_report(study, results, command, out, data["ensembles"],
                                           full or None, data.get("gradcam"))
    else:
        raise ValueError(f"study {name}: unknown kind {study.kind!r}")
    text += (f"\n\n*This report was rebuilt from `results.json` without training "
             f"(`python -m emotrace.experiments.rebuild {name}`).*")
    return report.write_outputs(out, text, {"study": name, "title": study.title,
                                            "command": command, "budget": data["budget"],
                                            "rebuilt_from_results": True, **new})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--out", default="experiments", help="folder holding NAME/results.json")
    args = parser.parse_args(argv)
    for name in args.studies:
        print(rebuild(name, args.out))


if __name__ == "__main__":
    main()

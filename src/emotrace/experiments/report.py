"""Study reports: ``report.md`` with tables and figures, and ``results.json`` with every number.

Every configuration of a study runs with several seeds; tables give mean ± sd and a 95% t
interval over seeds, a majority-class row, and each comparison an exact McNemar test per seed on
the same test images (per-image predictions are in ``results.json``). A comparison's p-value is
the largest of its seeds' (it claims that every seed differs) and the p-values of a report are
Holm-adjusted together. Sweep candidates are chosen on PublicTest; PrivateTest is read for final
configurations only. One writer per study kind (transfer, init, ladder, ensemble); the shared
parts are small helpers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emotrace.evaluation.plots import (plot_bars, plot_class_heatmaps, plot_confusion,
                                       plot_curve_comparison, plot_explanations,
                                       plot_learning_curves)
from emotrace.evaluation.stats import (ALPHA, McNemar, SeedSummary, bootstrap_interval, holm,
                                       majority_class, mcnemar_exact, summarize_seeds)
from emotrace.experiments.results import RunResult
from emotrace.experiments.study import Study
from emotrace.utils import atomic_path

SPLIT_NAMES = {"val": "PublicTest", "test": "PrivateTest"}
ONE_CYCLE_WARMUP = 0.2  # pct_start of the one-cycle schedule (training.module)


def pct(value: float | None) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:.1%}"


def spread(summary: SeedSummary, scale: float = 100.0, digits: int = 1, unit: str = "%",
           interval: bool = True) -> str:
    """``54.2 ± 0.8% [52.2, 56.2]``: mean ± sd over seeds and the 95% interval of the mean."""
    if np.isnan(summary.mean):
        return "–"
    mean = f"{summary.mean * scale:.{digits}f}"
    if np.isnan(summary.sd):
        return f"{mean}{unit}"
    text = f"{mean} ± {summary.sd * scale:.{digits}f}{unit}"
    if interval:
        text += f" [{summary.low * scale:.{digits}f}, {summary.high * scale:.{digits}f}]"
    return text


def rate(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """``4.97 ± 0.28 [4.70, 5.20]``: an MCR/MOFR over seeds, mean ± sd and the 95% percentile
    bootstrap interval of the mean (seeds resampled); ``†`` when the 95% t interval of the mean
    contains 0 (no rate shown different from 0)."""
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "–"
    summary = summarize_seeds(values)
    text = spread(summary, scale=scale, digits=digits, unit="", interval=False)
    if len(values) > 1:
        low, high = bootstrap_interval(values)
        text += f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
        if summary.low <= 0 <= summary.high:
            text += "†"  # the t interval (wider than the bootstrap's with few seeds) holds 0
    return text


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Group:
    """One configuration of a study: its runs, one per seed."""

    runs: list[RunResult]

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    @property
    def name(self) -> str:
        return self.first.spec.name

    @property
    def label(self) -> str:
        return self.first.label

    @property
    def config(self):
        return self.first.spec.config

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def seed_run(self, seed: int) -> RunResult:
        """This configuration's run with ``seed`` (comparisons pair runs by seed)."""
        found = [r for r in self.runs if r.seed == seed]
        if not found:
            raise ValueError(f"{self.label}: no run with seed {seed} (seeds {self.seeds}); run "
                             "the studies with the same --seeds")
        return found[0]

    def over_seeds(self, value: Callable[[RunResult], float | None]) -> SeedSummary:
        return summarize_seeds([np.nan if value(r) is None else value(r) for r in self.runs])

    @property
    def val(self) -> SeedSummary:
        return self.over_seeds(lambda r: r.val_acc)

    @property
    def test(self) -> SeedSummary:
        return self.over_seeds(lambda r: r.test_acc())

    @property
    def has_test(self) -> bool:
        return all(r.predictions.get("test") for r in self.runs)

    @property
    def minutes(self) -> float:
        return sum(r.minutes for r in self.runs)

    def summary(self, window: int = 5) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "seeds": self.seeds,
                "sweep": self.first.spec.sweep, "role": self.first.spec.role,
                "val_acc": self.val.as_dict(),
                "test_acc": self.test.as_dict() if self.has_test else None,
                "per_seed": [r.summary(window) for r in self.runs]}


def group_runs(results: list[RunResult]) -> list[Group]:
    """Runs grouped by configuration name, in study order."""
    names = list(dict.fromkeys(r.spec.name for r in results))
    return [Group([r for r in results if r.spec.name == name]) for name in names]


def sweep_choices(groups: list[Group]) -> dict[str, Group]:
    """Per sweep, the candidate with the best mean PublicTest accuracy over seeds (only
    PublicTest: PrivateTest plays no part in the choice)."""
    chosen: dict[str, Group] = {}
    for g in groups:
        sweep = g.first.spec.sweep
        if sweep and (sweep not in chosen or g.val.mean > chosen[sweep].val.mean):
            chosen[sweep] = g
    return chosen


def is_final(group: Group, chosen: dict[str, Group]) -> bool:
    """A final configuration (its PrivateTest accuracy is reported): not a sweep candidate, one
    marked final, or the candidate its sweep chose on PublicTest."""
    spec = group.first.spec
    return spec.reads_test or chosen.get(spec.sweep) is group


def test_cell(group: Group, chosen: dict[str, Group]) -> str:
    if not is_final(group, chosen):
        return "not read (not chosen)"
    return spread(group.test) if group.has_test else "–"


def sweep_label(group: Group, chosen: dict[str, Group]) -> str:
    sweep = group.first.spec.sweep
    return f"{group.label} **(chosen on PublicTest)**" if sweep and chosen.get(sweep) is group \
        else group.label


def pending_lines(study: Study, results: list[RunResult], command: str) -> list[str]:
    """The configurations (and seeds) the study defines that have no results in this report."""
    seeds_done: dict[str, set[int]] = {}
    stale = {r.spec.name for r in results if r.stale}
    for r in results:
        if not r.stale:  # a run made before a fix is run again
            seeds_done.setdefault(r.spec.name, set()).add(r.seed)
    wanted: dict[str, tuple[str, list[int]]] = {}
    for run in study.runs:
        if run.requires_weights and not run.config.weights:
            continue  # listed under "Not run here" with what it needs
        wanted.setdefault(run.name, (run.label, []))[1].append(run.seed)
    lines = []
    for name, (label, seeds) in wanted.items():
        missing = [s for s in seeds if s not in seeds_done.get(name, set())]
        if missing == seeds:
            lines.append(f"- {label}: not run yet ({len(seeds)} seeds)" +
                         (": the rows above are runs made before a fix" if name in stale else ""))
        elif missing:
            lines.append(f"- {label}: seeds {', '.join(map(str, missing))} of "
                         f"{', '.join(map(str, seeds))} not run yet")
    if not lines:
        return []
    return ["## Defined in the study, not run yet", "",
            f"These rows appear in the tables above once their runs exist: "
            f"`{command.split(' --')[0]}` trains what is missing and writes this report again.",
            "", *lines, ""]


def stale_note(results: list[RunResult]) -> list[str]:
    stale = sorted({r.label for r in results if r.stale})
    reasons = sorted({r.stale for r in results if r.stale})
    if not stale:
        return []
    return ["> **Runs made before a fix.** " + " ".join(reasons) + " Affected rows: " +
            "; ".join(stale) + ". Their numbers are those of the old code; the study defines "
            "their re-runs (below).", ""]


@lru_cache(maxsize=8)
def split_labels(data: str, scheme: str = "official", split_seed: int = 42) -> dict[str, np.ndarray]:
    """Labels of the train / val / test splits, in the order predictions are saved."""
    from emotrace.data import load_dataset, split_dataset

    return {name: part.labels for name, part in
            split_dataset(load_dataset(data), scheme, split_seed).items()}


@dataclass
class Majority:
    """The trivial baseline: always answer the training split's most frequent class."""

    label: int
    val: float
    test: float

    @property
    def name(self) -> str:
        from emotrace.data.labels import EMOTIONS
        return EMOTIONS[self.label]

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.name, "val_acc": self.val, "test_acc": self.test}


def majority_baseline(group: Group) -> Majority:
    config = group.config
    labels = split_labels(config.data, config.split, config.split_seed)
    label = majority_class(labels["train"])
    return Majority(label, float(np.mean(labels["val"] == label)),
                    float(np.mean(labels["test"] == label)))


@dataclass
class Comparison:
    """``a`` vs ``b`` on the same images: per-seed accuracy differences and McNemar tests.

    ``p_value`` is the largest per-seed p (the claim "every seed differs"); ``holm_p`` is that
    p-value Holm-adjusted over the ``family`` comparisons of the report (see :func:`adjust`)."""

    a: str
    b: str
    split: str
    differences: SeedSummary
    tests: list[McNemar]
    scheme: str = "official"
    holm_p: float | None = None
    family: int = 0

    @property
    def p_value(self) -> float:
        return max(t.p_value for t in self.tests) if self.tests else float("nan")

    @property
    def every_seed(self) -> bool:
        return bool(self.tests) and all(t.significant for t in self.tests)

    @property
    def significant(self) -> bool:
        """After Holm's correction when adjusted, else when every seed's test is."""
        if self.holm_p is not None:
            return self.holm_p < ALPHA
        return self.every_seed

    def verdict(self) -> str:
        if self.holm_p is None:
            return "significant in every seed" if self.every_seed else "**not significant**"
        return (f"Holm over the report's {self.family} comparisons p = {self.holm_p:.3g}: "
                + ("significant" if self.significant else "**not significant**"))

    def sentence(self) -> str:
        where = (SPLIT_NAMES[self.split] if self.scheme == "official"
                 else f"the {self.scheme} split's own {self.split} part")
        ps = ", ".join(f"{t.p_value:.3g}" for t in self.tests)
        if len(self.tests) == 1:
            test = (f"exact McNemar on the same images ({self.tests[0].only_a} right only by "
                    f"the first, {self.tests[0].only_b} only by the second): p = {ps}")
        else:
            test = (f"exact McNemar per seed (paired, same images): p = {ps}, largest "
                    f"{self.p_value:.3g}")
        return (f"{self.a} − {self.b}: {spread(self.differences, unit=' points')} on {where}; "
                f"{test}; {self.verdict()}.")

    def cell(self) -> str:
        """Short form for a table: difference and Holm-adjusted p."""
        shown = spread(self.differences, unit="", interval=False)
        p = self.holm_p if self.holm_p is not None else self.p_value
        mark = "" if self.significant else ", n.s."
        return f"{shown}; p_Holm = {p:.2g}{mark}"

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "split": self.split, "split_scheme": self.scheme,
                "difference_points": {k: (np.array(v) * 100).tolist() if k == "values"
                                      else [x * 100 for x in v] if k == "ci95" else v * 100
                                      for k, v in self.differences.as_dict().items()},
                "mcnemar_per_seed": [t.as_dict() for t in self.tests],
                "significant_every_seed": self.every_seed,
                "p_largest": self.p_value, "p_holm": self.holm_p, "holm_family": self.family,
                "significant_after_holm": self.significant if self.holm_p is not None else None}


def adjust(comparisons: list[Comparison]) -> list[Comparison]:
    """Holm-adjust the comparisons of one report together (each by its largest per-seed p)."""
    adjusted = holm([c.p_value for c in comparisons])
    for comparison, p in zip(comparisons, adjusted):
        comparison.holm_p, comparison.family = p, len(comparisons)
    return comparisons


def compare(a: Group, b: Group | Majority, split: str = "test", b_name: str | None = None) -> Comparison:
    """Seed i of ``a`` against seed i of ``b`` (or the majority class) on ``split``."""
    config = a.config
    labels = split_labels(config.data, config.split, config.split_seed)[split]
    tests, differences = [], []
    for run in a.runs:
        mine = run.predicted(split)
        if isinstance(b, Majority):
            theirs, name = np.full_like(mine, b.label), f"majority class ({b.name})"
        else:
            theirs, name = b.seed_run(run.seed).predicted(split), b.label
        tests.append(mcnemar_exact(labels, mine, theirs))
        differences.append(float(np.mean(mine == labels) - np.mean(theirs == labels)))
    return Comparison(a.label, b_name or name, split, summarize_seeds(differences), tests,
                      config.split)


def _devices(results: list[RunResult]) -> str:
    devices = sorted({r.device for r in results})
    return " and ".join(d.removeprefix("CPU: ").removeprefix("GPU: ") for d in devices)


METHOD = (
    "Model selection uses PublicTest only: each run's checkpoint, every swept learning rate "
    "(the candidate with the best mean PublicTest accuracy over seeds is kept) and an "
    "ensemble's member ranks. PrivateTest is read once per final configuration, never for a "
    "choice; rows of candidates a sweep did not choose say \"not read\". Each kept checkpoint is "
    "exported to ONNX (the file `emotrace predict` would use) and measured through the same "
    "preprocessing as validation during training. Accuracies are mean ± sd over seeds with the "
    "95% t interval of the mean in brackets. Paired tests: exact McNemar (binomial on the "
    "images only one of the two models gets right), seed i against seed i, on the per-image "
    "predictions saved in `results.json`; a comparison's p is the largest of its seeds' (the "
    "claim that every seed differs), and all p-values of a report are Holm-adjusted together "
    "(\"p_Holm\"); \"not significant\" means p_Holm ≥ 0.05.")


def header(study: Study, command: str, results: list[RunResult], extra_minutes: float = 0) -> str:
    b = study.budget
    minutes = sum(r.minutes for r in results) + extra_minutes
    seeds = sorted({r.seed for r in results})
    return "\n".join([
        f"# {study.title}", "",
        f"Reproduce: `{command}`", "",
        f"**Question.** {study.question}", "",
        f"**Budget.** {b['epochs']} epochs, {b['image_size']} px input (unless a run says "
        f"otherwise), {b['subset']:.0%} of the training split (class-stratified, split seed 42) "
        f"of `{study.runs[0].config.data}`; validation and test splits whole (PublicTest and "
        f"PrivateTest on the official split). **{len(seeds)} seeds** per configuration "
        f"({', '.join(map(str, seeds))}: weights' init, batch order, augmentation; the data stay "
        f"the same). Trained on {_devices(results)}: {minutes:.0f} min of training in all for "
        "this report's runs (runs shared with other studies are trained once). The same command "
        f"scales up unchanged on a GPU, e.g. `{command.split(' --')[0]} --epochs 30 "
        "--image-size 224 --subset 1`.", "",
        METHOD, ""])


def _params(r: RunResult) -> str:
    text = f"{r.params / 1e6:.2f} M"
    if r.frozen_params:
        text += f" (+ {r.frozen_params / 1e6:.2f} M frozen)"
    if r.external_params:
        text += f" (+ {r.external_params / 1e6:.1f} M frozen in dlib)"
    return text


def run_table(groups: list[Group], majority: Majority, chosen: dict[str, Group]) -> str:
    rows = []
    for g in groups:
        final = is_final(g, chosen)
        recall = g.over_seeds(lambda r: r.metrics.get("test", {}).get("macro_recall"))
        rows.append([sweep_label(g, chosen), f"{g.config.image_size} px", _params(g.first),
                     f"{g.config.epochs}, lr {g.config.lr:g}",
                     f"{g.minutes / len(g.runs):.1f} min",
                     spread(g.over_seeds(lambda r: r.stats["initial_val_acc"]), interval=False),
                     f"**{spread(g.val)}**", test_cell(g, chosen),
                     spread(recall, interval=False) if final else "–"])
    rows.append([f"majority class ({majority.name})", "–", "0", "–", "–", pct(majority.val),
                 pct(majority.val), pct(majority.test), "14.3%"])
    return _table(["run", "input", "params trained", "epochs, LR", "train time per seed",
                   "epoch-1 val acc", "best val acc (PublicTest)", "test acc (PrivateTest)",
                   "test macro recall"], rows)


def write_outputs(out: Path, report: str, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(report.rstrip() + "\n")
    return out / "report.md"


def learning_curves(groups: list[Group], figures: Path, majority: Majority) -> list[str]:
    lines = []
    for g in groups:
        r = g.first
        augment = r.spec.config.augment
        augmented = bool(augment.hflip or augment.rotation or augment.shift or augment.erasing)
        png = plot_learning_curves(r.history, figures / f"curves-{r.spec.name}.png",
                                   title=f"{r.label} (seed {r.seed})", augmented=augmented,
                                   baseline=majority.val)
        lines.append(f"![learning curves: {r.label}](figures/{png.name})")
    return lines


def confusions(groups: list[Group], figures: Path) -> list[str]:
    lines = []
    for g in groups:
        r = g.first
        if "test" not in r.metrics:
            continue
        m = r.metrics["test"]
        png = plot_confusion(np.array(m["confusion"]), figures / f"confusion-{r.spec.name}.png",
                             title=f"{r.label} (seed {r.seed}): PrivateTest {m['accuracy']:.1%}")
        lines.append(f"![confusion: {r.label}](figures/{png.name})")
    return lines


def curve_figure(groups: list[Group], path: Path, title: str, majority: Majority,
                 dashed: tuple[str, ...] = (), by_model: bool = False) -> str:
    png = plot_curve_comparison(
        {g.label: [r.history for r in g.runs] for g in groups}, path, title=title,
        dashed=dashed, baseline=majority.val,
        groups={g.label: g.config.model for g in groups} if by_model else None)
    return f"![curves](figures/{png.name})"


def trained(history: list[dict]) -> list[dict]:
    return [row for row in history if row["epoch"] >= 1]


def explain_section(model: Path, data: str, figures: Path, name: str, per_class: int = 150,
                    examples: int = 4, subject: str = "",
                    explained: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Grad-CAM: mean heatmap per true class over a class-stratified test sample, and a few test
    faces with their heatmap and probability bars. ``subject`` names the explained model.
    ``explained``: the numbers of an earlier call (its figures already in ``figures``), for a
    report rebuilt without the model files."""
    if explained is None:
        explained = _explain(model, data, figures, name, per_class, examples)
    side, size = explained["map_size"], explained["input_size"]
    text = "\n".join([
        "## What the model looks at (Grad-CAM)", "",
        *([subject, ""] if subject else []),
        f"Top row: the mean face of each emotion over up to {per_class} PrivateTest faces per "
        f"class ({sum(explained['faces_per_class'])} in all); bottom row: the mean Grad-CAM "
        "heatmap explaining the true class, on one colour scale (each face's map scaled to peak "
        f"1 before averaging). The explained activation map is only {side}x{side} at this {size} "
        "px input: the heatmaps are that coarse grid upsampled bilinearly, so they locate "
        "regions (upper vs lower face), not features. Then four test faces with the heatmap of "
        "the predicted class and the probability of every class. Any model can be explained the "
        "same way: `emotrace explain FACE.jpg --model MODEL.onnx --save out.png`.", "",
        f"![class heatmaps](figures/gradcam-classes-{name}.png)", "",
        f"![examples](figures/gradcam-examples-{name}.png)", ""])
    return text, explained


def _explain(model: Path, data: str, figures: Path, name: str, per_class: int,
             examples: int) -> dict[str, Any]:
    from emotrace.data import load_dataset, select_split
    from emotrace.data.labels import EMOTIONS
    from emotrace.evaluation.gradcam import GradCAM, class_mean_heatmaps

    faces = select_split(load_dataset(data), "test")
    rng = np.random.default_rng(42)
    picks = np.concatenate([rng.permutation(np.flatnonzero(faces.labels == c))[:per_class]
                            for c in range(len(EMOTIONS))])
    explainer = GradCAM(model)
    size, side = explainer.classifier.size, explainer.map_size
    heatmaps, mean_faces = class_mean_heatmaps(explainer, faces.images[picks], faces.labels[picks])
    plot_class_heatmaps(heatmaps, mean_faces, figures / f"gradcam-classes-{name}.png",
                        title=f"mean Grad-CAM per true class ({name}, up to {per_class} test "
                              f"faces per class; {side}x{side} maps upsampled to {size}x{size})")
    chosen = [rng.choice(np.flatnonzero(faces.labels == c)) for c in (3, 0, 5, 4)][:examples]
    result = explainer.explain(faces.images[chosen])
    plot_explanations(explainer.classifier.preprocess(faces.images[chosen])[:, 0],
                      result.heatmaps, result.probs, result.targets,
                      figures / f"gradcam-examples-{name}.png",
                      title=f"{name}: Grad-CAM of the predicted class",
                      captions=[f"true: {EMOTIONS[faces.labels[i]]}" for i in chosen])
    return {"map_size": side, "input_size": size,
            "faces_per_class": np.bincount(faces.labels[picks], minlength=7).tolist(),
            "examples": [{"true": EMOTIONS[faces.labels[i]], "predicted": EMOTIONS[t],
                          "probs": p.round(4).tolist()}
                         for i, t, p in zip(chosen, result.targets, result.probs)]}


def _group_data(groups: list[Group], majority: Majority, comparisons: list[Comparison],
                window: int = 5, chosen: dict[str, Group] | None = None) -> dict[str, Any]:
    return {"configurations": [g.summary(window) for g in groups],
            "majority_class": majority.as_dict(),
            "comparisons": [c.as_dict() for c in comparisons],
            "chosen_on_publictest": {k: g.name for k, g in (chosen or {}).items()},
            "predictions_format": "per split, one digit (class index, EMOTIONS order) per image "
                                  "in dataset order (official split: the order of "
                                  "`select_split(load_dataset(data), split)`)"}


def _sweep_note(groups: list[Group], chosen: dict[str, Group], study: Study) -> list[str]:
    lines = []
    for sweep, best in chosen.items():
        candidates = [g for g in groups if g.first.spec.sweep == sweep]
        defined = len({r.name for r in study.runs if r.sweep == sweep})
        lines.append(f"- Sweep `{sweep}`: {best.label} chosen on PublicTest "
                     f"({spread(best.val, interval=False)}) among the {len(candidates)} of "
                     f"{defined} candidates run so far"
                     + ("" if len(candidates) == defined else
                        ": the choice can change when the others exist") + ".")
    return [*lines, ""] if lines else []


def transfer_report(study: Study, results: list[RunResult], command: str, out: Path,
                    explained: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    groups = group_runs(results)
    majority = majority_baseline(groups[0])
    chosen = sweep_choices(groups)
    finals = [g for g in groups if is_final(g, chosen)]
    transfer = max((g for g in finals if g.config.pretrained), key=lambda g: g.val.mean)
    baseline = next(g for g in finals if g.config.model == "plain_cnn")
    headline = compare(transfer, baseline)
    floors = [compare(g, majority) for g in finals]
    adjust([headline, *floors])
    sizes = "; ".join(f"{g.label}: {g.config.image_size} px" for g in finals)
    lines = [header(study, command, results), *stale_note(results), "## Results", "",
             run_table(groups, majority, chosen), "",
             f"**Input sizes.** {sizes}. FER-2013 faces are 48 px: MobileNetV2 sees them "
             "upscaled (ImageNet features are built for larger inputs), the plain CNN at their "
             "native size.", "",
             *_sweep_note(groups, chosen, study),
             f"**Headline.** {headline.sentence()}", "",
             *[f"- {c.sentence()}" for c in floors], "",
             curve_figure(groups, figures / "val-curves.png",
                          "validation accuracy and loss per epoch (mean of seeds, min–max band)",
                          majority), "",
             "## Confusion matrices (PrivateTest, first seed)", "",
             *confusions(finals, figures),
             "", "## Learning curves (first seed)", "",
             *learning_curves(groups, figures, majority), ""]
    explain, explain_data = explain_section(transfer.first.run_dir / "model.onnx",
                                            transfer.config.data, figures, transfer.name,
                                            explained=explained)
    lines += [explain, *pending_lines(study, results, command)]
    return "\n".join(lines), {**_group_data(groups, majority, [headline, *floors], chosen=chosen),
                              "gradcam": explain_data}


def warmup_epochs(group: Group) -> str:
    """The epochs a one-cycle run spends with its learning rate still rising."""
    config = group.config
    if config.scheduler != "onecycle":
        return "none"
    return f"1–{math.ceil(ONE_CYCLE_WARMUP * config.epochs)}"


def _window_table(groups: list[Group], window: int) -> str:
    rows = []
    for g in groups:
        warm = math.ceil(ONE_CYCLE_WARMUP * g.config.epochs) if g.config.scheduler == "onecycle" \
            else 0
        for w in g.first.windows(window):
            def value(r: RunResult, key: str, epochs: str = w["epochs"]) -> float:
                same = [x for x in r.windows(window) if x["epochs"] == epochs]
                return same[0][key] if same else float("nan")  # a seed that stopped early
            cell = {key: [value(r, key) for r in g.runs]
                    for key in ("mcr_acc", "mcr_loss", "mofr_acc", "mofr_loss")}
            first = int(w["epochs"].split("-")[0])
            stage = ("warm-up (LR rising)" if int(w["epochs"].split("-")[1]) <= warm else
                     "warm-up, then decay" if first <= warm else
                     "decay" if warm else "–")
            rows.append([g.label, w["epochs"], w["steps"], stage, rate(cell["mcr_acc"]),
                         rate(cell["mcr_loss"], scale=1, digits=3), rate(cell["mofr_acc"]),
                         rate(cell["mofr_loss"], scale=1, digits=3)])
    return _table(["run", "epochs", "n (steps)", "one-cycle stage", "MCR acc (pt/epoch)",
                   "MCR loss (/epoch)", "MOFR acc (pt/epoch)", "MOFR loss (/epoch)"], rows)


def _init_table(groups: list[Group], majority: Majority, chosen: dict[str, Group]) -> str:
    rows = []
    for g in groups:
        config = g.config
        rows.append([sweep_label(g, chosen), _params(g.first), f"{config.epochs}, lr {config.lr:g}",
                     warmup_epochs(g),
                     spread(g.over_seeds(lambda r: r.history[0]["val_acc"]), interval=False)
                     if g.first.history[0]["epoch"] == 0 else "–",
                     spread(g.over_seeds(lambda r: r.stats["initial_val_acc"]), interval=False),
                     rate([r.stats["mcr_acc"] for r in g.runs]),
                     rate([r.stats["mofr_acc"] for r in g.runs]),
                     f"**{spread(g.val)}**", test_cell(g, chosen),
                     f"{g.minutes / len(g.runs):.1f} min"])
    rows.append([f"majority class ({majority.name})", "0", "–", "–", pct(majority.val),
                 pct(majority.val), "0", "0", pct(majority.val), pct(majority.test), "–"])
    return _table(["run", "params trained", "epochs, LR", "one-cycle warm-up (epochs)",
                   "epoch-0 val acc", "epoch-1 val acc", "MCR acc (pt/epoch) [bootstrap 95%]",
                   "MOFR acc (pt/epoch) [bootstrap 95%]", "best val acc", "test acc",
                   "train time per seed"], rows)


def _epoch_table(groups: list[Group], epochs: tuple[int, ...] = (1, 2, 5, 10, 20, 30)) -> str:
    """Validation accuracy against epochs (mean ± sd over seeds) for each arm."""
    rows = []
    for g in groups:
        cells = []
        for epoch in epochs:
            values = [row["val_acc"] for r in g.runs for row in r.history if row["epoch"] == epoch]
            cells.append(spread(summarize_seeds(values), interval=False)
                         if len(values) == len(g.runs) else
                         "–" if not values else f"{np.mean(values):.1%} ({len(values)} seeds)")
        rows.append([g.label, *cells])
    return _table(["run", *[f"epoch {e}" for e in epochs]], rows)


def _init_pairs(groups: list[Group], chosen: dict[str, Group]) -> list[tuple[Group, Group]]:
    """(pretrained, random) of the same backbone and split: the random recipe equal to the
    pretrained one (marked final) and the random recipe chosen on PublicTest."""
    pairs = []
    for pre in groups:
        if not pre.config.pretrained or pre.first.spec.role or pre.first.external_params:
            continue
        for rand in groups:
            if (not rand.config.pretrained and rand.config.model == pre.config.model
                    and rand.config.split == pre.config.split and is_final(rand, chosen)):
                pairs.append((pre, rand))
    return pairs


INIT_DEFINITIONS = (
    "MCR and MOFR follow the seed papers, with Metric_0 measured before the first epoch (the "
    "epoch-0 row) so every window has n steps: MCR = (1/n) Σ (M_i − M_{i−1}) of the training "
    "metric; MOFR = (1/n) Σ [(train_i − val_i) − (train_{i−1} − val_{i−1})], the growth per "
    "epoch of the train–validation gap. Both sums **telescope**: MCR = (M_end − M_start)/n and "
    "MOFR = (gap_end − gap_start)/n, so they depend only on a window's first and last "
    "measurement, not on the path between (a run that peaks and falls back scores like one "
    "that never moved). They are taken literally for accuracy and for loss: a learning model "
    "has MCR(acc) > 0 and MCR(loss) < 0; a widening gap (overfitting) gives MOFR(acc) > 0 and "
    "MOFR(loss) < 0. The training metric is measured like validation after every epoch "
    "(inference mode, no augmentation, plain cross-entropy, no label smoothing), so the gap "
    "compares like with like. Intervals in brackets are 95% percentile bootstrap intervals of "
    "the mean over seeds (10,000 resamples): with 3 seeds there are only 10 distinct resamples "
    "and the interval cannot be wider than the seeds' range, so it understates the uncertainty; "
    "so a rate is called different from 0 only when the 95% t interval of the mean excludes 0 as "
    "well († marks those where it does not, e.g. a MOFR of −0.25 ± 0.29 over 3 seeds). The "
    "one-cycle schedule raises "
    "the learning rate over the first 20% of the epochs (epochs 1–2 of a 10-epoch run, 1–6 of a "
    "30-epoch run): a window is compared only with windows at the same stage of the same "
    "schedule (the \"one-cycle stage\" column); epochs 1–5 of a 30-epoch run are inside its "
    "warm-up, those of a 10-epoch run are not.")


def init_report(study: Study, results: list[RunResult], command: str, out: Path,
                skipped: list[str], face_seconds: float | None = None) -> tuple[str, dict[str, Any]]:
    """``face_seconds``: the dlib descriptor's cost per face when already measured (a rebuilt
    report), else timed now."""
    figures = out / "figures"
    window = int(study.options.get("window", 5))
    groups = group_runs(results)
    chosen = sweep_choices(groups)
    majority = majority_baseline(groups[0])
    baselines, sections, comparisons = {}, [], []
    for variant in ("official", "stratified"):
        group = [g for g in groups if g.first.spec.variant == variant]
        if not group:
            continue
        majority = baselines[variant] = majority_baseline(group[0])
        testable = [g for g in group if g.has_test and is_final(g, chosen)]
        found = [compare(a, b) for a, b in _init_pairs(testable, chosen)] + [
            compare(g, majority) for g in testable if not g.config.pretrained]
        comparisons += found
        sections.append((variant, group, found))
    adjust(comparisons)
    lines = [header(study, command, results), *stale_note(results),
             *_sweep_note(groups, chosen, study)]
    for variant, group, found in sections:
        title = ("Official split (train / PublicTest)" if variant == "official" else
                 "Stratified 70/10/20 split (split seed 42), the second paper's protocol")
        note = ("Validation and test here are the stratified split's own 10% and 20% (never the "
                "official PrivateTest, which is part of the pooled data these runs train on)."
                if variant == "stratified" else "")
        arms = [g for g in group if not g.first.external_params and
                (g.config.pretrained or is_final(g, chosen))]
        lines += [f"## {title}", "", *([note, ""] if note else []),
                  _init_table(group, baselines[variant], chosen), "",
                  *[f"- {c.sentence()}" for c in found], "",
                  "### Accuracy against epochs, both arms", "",
                  "Validation (PublicTest) accuracy after each epoch, mean ± sd over seeds: the "
                  "pretrained arm and the random-init recipes reported above.", "",
                  _epoch_table(arms), "",
                  curve_figure(arms, figures / f"init-curves-{variant}.png",
                               f"{title}: pretrained (solid) vs random init (dashed)",
                               baselines[variant],
                               dashed=tuple(g.label for g in arms if not g.config.pretrained),
                               by_model=True), "",
                  f"### Mean convergence rate and mean overfitting rate per {window} epochs", "",
                  _window_table(group, window), ""]
    lines += [INIT_DEFINITIONS, ""]
    face_lines, face_seconds = _face_section(groups, face_seconds)
    lines += face_lines
    if skipped:
        lines += ["## Not run here", "", *[f"- {s}" for s in skipped], ""]
    lines += pending_lines(study, results, command)
    return "\n".join(lines), {**_group_data(groups, majority, comparisons, window, chosen),
                              "majority_class": {v: m.as_dict() for v, m in baselines.items()},
                              "skipped": skipped, "face_descriptor_s_per_face": face_seconds}


def _face_verdict(face: Group, best: Group) -> str:
    """What the unpaired validation numbers say about face-recognition features, and no more."""
    apart = abs(face.val.mean - best.val.mean) > face.val.sd + best.val.sd
    if face.val.mean < best.val.mean:
        return ("lower, so here it does not support the hypothesis that face-recognition "
                "features transfer better (a descriptor trained to tell people apart is built to "
                "ignore their expression)." if apart else
                "lower, but within the seed-to-seed spread: no difference shown.")
    return ("higher, in favour of face-recognition features at this budget." if apart else
            "higher, but within the seed-to-seed spread: no difference shown.")


def _face_section(groups: list[Group], seconds: float | None) -> tuple[list[str], float | None]:
    faces = [g for g in groups if g.first.external_params]
    imagenet = [g for g in groups if g.config.pretrained and not g.first.external_params
                and g.first.spec.variant == "official" and not g.first.spec.role]
    if not (faces and imagenet):
        return [], seconds
    face, best = faces[0], max(imagenet, key=lambda g: g.val.mean)
    if seconds is None:
        from emotrace.data import load_dataset
        from emotrace.models.dlib import seconds_per_face

        seconds = seconds_per_face(load_dataset(face.config.data).images[:64])
    return ["## Face-recognition features", "",
            f"The dlib face descriptor with a trained head reaches {spread(face.val)} on "
            f"PublicTest against {spread(best.val)} for {best.label} fine-tuned at the same "
            f"budget: {_face_verdict(face, best)} It has no ONNX export, so no PrivateTest row "
            "or paired test. Its "
            "train time covers the head only: the descriptors are computed once beforehand "
            f"({seconds * 1000:.0f} ms per face on this CPU, timed on 64 faces when the report "
            "was first written) and cached.", ""], seconds


def ladder_report(study: Study, results: list[RunResult], command: str,
                  out: Path) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    groups = group_runs(results)
    majority = majority_baseline(groups[0])
    chosen = sweep_choices(groups)
    reference = next(g for g in groups if g.name == study.options.get("reference", "two-phase"))
    comparisons: dict[str, Comparison] = {}
    for g in groups:
        if g is not reference and is_final(g, chosen) and g.has_test:
            comparisons[g.name] = compare(g, reference, b_name="the reference")
    best_vs_best = None
    adam, sgd = chosen.get("adam"), chosen.get("sgd")
    if adam and sgd and adam.has_test and sgd.has_test and adam is not reference:
        best_vs_best = compare(sgd, adam)  # (with Adam's best the reference, it is above)
    family = [*comparisons.values(), *([best_vs_best] if best_vs_best else [])]
    adjust(family)
    rows = []
    for g in groups:
        kept = ("last epoch" if g.first.spec.uses_last_epoch else "best (epochs " +
                ", ".join(str(r.stats["best_epoch"]) for r in g.runs) + ")")
        runs = ", ".join(str(r.history[-1]["epoch"]) for r in g.runs)
        label = sweep_label(g, chosen) + (" **(reference)**" if g is reference else "")
        rows.append([label, f"**{spread(g.val)}**", test_cell(g, chosen),
                     comparisons[g.name].cell() if g.name in comparisons else "", kept, runs,
                     f"{g.minutes / len(g.runs):.1f} min"])
    rows.append([f"majority class ({majority.name})", pct(majority.val), pct(majority.test),
                 "", "", "", ""])
    optimizer = []
    if adam and sgd:
        verdict = best_vs_best or comparisons.get(sgd.name)
        optimizer = [f"**Optimizers at their best learning rate** (each chosen on PublicTest): "
                     f"Adam at LR {adam.config.lr:g} against SGD at LR {sgd.config.lr:g}: " +
                     (verdict.sentence() if verdict else "no PrivateTest comparison yet."), ""]
    lines = [header(study, command, results), *stale_note(results), "## What each step adds",
             "", _table(["step", "val acc (PublicTest)", "test acc (PrivateTest)",
                         "test vs reference (pt; p_Holm)", "weights kept", "epochs run",
                         "train time per seed"], rows), "",
             "Rows marked \"one factor\" change one thing against the reference (two-phase, "
             "Adam at LR 1e-3, augmentation, early stopping, best checkpoint and "
             "ReduceLROnPlateau); differences are on PrivateTest, seed against seed.", "",
             *_sweep_note(groups, chosen, study), *optimizer,
             *[f"- {c.sentence()}" for c in comparisons.values()], "",
             *_interaction(groups, comparisons),
             _callback_sentence(groups, reference), "",
             curve_figure(groups, figures / "ladder-curves.png",
                          "validation curves per step (mean of seeds, min–max band)", majority),
             "", "## Learning curves (first seed)", "",
             "The dashed line marks the start of phase 2 (top blocks unfrozen).", "",
             *learning_curves(groups, figures, majority), "",
             *pending_lines(study, results, command)]
    return "\n".join(lines), {**_group_data(groups, majority, family, chosen=chosen),
                              "reference": reference.name}


def _interaction(groups: list[Group], comparisons: dict[str, Comparison]) -> list[str]:
    """The three callbacks off at once against the sum of their one-factor effects."""
    parts = ("two-phase-no-early-stopping", "two-phase-last-epoch", "two-phase-constant-lr")
    if not all(p in comparisons for p in (*parts, "two-phase-no-callbacks")):
        return []
    total = sum(comparisons[p].differences.mean for p in parts) * 100
    joint = comparisons["two-phase-no-callbacks"].differences.mean * 100
    return [f"The three callbacks off at once: {joint:+.1f} points; the sum of their "
            f"one-factor effects: {total:+.1f} points.", ""]


def _callback_sentence(groups: list[Group], reference: Group) -> str:
    """What the callbacks did in each seed: early stops, LR cuts on plateau, best vs last; and
    whether the no-callback ablation differs from the reference at all."""
    stopped = [f"{g.label} (seed {r.seed}) at epoch {r.history[-1]['epoch']}"
               for g in groups for r in g.runs if r.history[-1]["epoch"] < r.spec.config.epochs]
    cuts = sorted({g.label for g in groups for r in g.runs
                   if any(b["lr"] < a["lr"] and b["phase"] == a["phase"]
                          for a, b in zip(trained(r.history), trained(r.history)[1:]))})
    text = (f"Callbacks: EarlyStopping stopped {'; '.join(stopped) if stopped else 'no run'}. "
            f"ReduceLROnPlateau lowered the learning rate in "
            f"{', '.join(cuts) if cuts else 'no run'}.")
    ablation = [g for g in groups if g.first.spec.uses_last_epoch]
    for g in ablation:
        same = [a.seed for a in g.runs if a.seed in reference.seeds and
                [r["val_acc"] for r in a.history] ==
                [r["val_acc"] for r in reference.seed_run(a.seed).history]]
        if same:
            text += (f" In seed(s) {', '.join(map(str, same))} \"{g.label}\" trained exactly like "
                     "the reference: that seed measures only keeping the last epoch instead of "
                     "the best.")
    return text


def _predicted(digits: str) -> np.ndarray:
    return np.frombuffer(digits.encode(), np.uint8) - ord("0")


def _versus(name: str, mine: list[np.ndarray], theirs: list[np.ndarray], labels: np.ndarray,
            against: str) -> Comparison:
    tests = [mcnemar_exact(labels, a, b) for a, b in zip(mine, theirs)]
    gains = [float(np.mean(a == labels) - np.mean(b == labels)) for a, b in zip(mine, theirs)]
    return Comparison(name, against, "test", summarize_seeds(gains), tests)


def full_data_comparisons(full: dict[str, Any], labels: np.ndarray) -> list[Comparison]:
    """Each full-data ensemble against the member chosen on PublicTest and against the member
    best on PrivateTest (an oracle choice a user cannot make: it favours the member)."""
    members = full["members"]
    by_public = max(members, key=lambda m: m["val"]["accuracy"])
    by_private = max(members, key=lambda m: m["test"]["accuracy"])
    found = []
    for scheme, card in full["ensembles"].items():
        mine = [_predicted(card["predictions"]["test"])]
        found.append(_versus(f"full-data ensemble ({scheme})", mine,
                             [_predicted(by_public["test"]["predictions"])], labels,
                             f"{by_public['name']} (the member chosen on PublicTest)"))
        found.append(_versus(f"full-data ensemble ({scheme})", mine,
                             [_predicted(by_private["test"]["predictions"])], labels,
                             f"{by_private['name']} (the best member by PrivateTest: an oracle "
                             "choice)"))
    return found


def full_data_text(full: dict[str, Any], comparisons: list[Comparison]) -> str:
    """The section on members trained on the full training split."""
    if full.get("missing") is not None or "members" not in full:
        return ("## Members trained on the full training split\n\nNot run: missing member "
                f"file(s) {', '.join(full.get('missing', []))}; train and export them (see the "
                "README's model section) and run the study again.")
    rows = [[m["name"], f"{m['val']['accuracy']:.2%}", f"{m['test']['accuracy']:.2%}"]
            for m in full["members"]]
    flip = full.get("flip", False)
    for scheme, card in full["ensembles"].items():
        rows.append([f"**ensemble ({scheme} weights{', flip-averaged' if flip else ''})**",
                     f"{card['accuracy']['val']:.2%}", f"**{card['accuracy']['test']:.2%}**"])
    rows.append(["majority class", "", f"{full['majority_test_acc']:.2%}"])
    return "\n".join([
        "## Members trained on the full training split", "",
        f"{len(full['members'])} models trained on all 28,709 training faces (the shipped "
        "`fast` model and the models issue's members, one seed each: a full-data run costs 1–2 "
        "hours on this CPU, so the seed-to-seed spread is measured at the study budget below, "
        "not here). Weights and the member a user would pick come from PublicTest only"
        f"{'; every ensemble averages each face with its mirror image' if flip else ''}. The "
        "gain is given twice: against the member chosen on PublicTest (what a user gets) and "
        "against the member that is best on PrivateTest (an oracle choice, which favours the "
        "member). Single models, so one test each, no spread.", "",
        _table(["model", "PublicTest", "PrivateTest"], rows), "",
        *[f"- {c.sentence()}" for c in comparisons], ""])


def ensemble_report(study: Study, results: list[RunResult], command: str, out: Path,
                    ensembles: dict[str, list[dict[str, Any]]],
                    full: dict[str, Any] | None = None,
                    explained: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``ensembles``: per scheme, one ensemble card per seed (built from that seed's members);
    ``full``: the numbers of the members trained on the full training split, when given."""
    figures = out / "figures"
    groups = group_runs(results)
    members = [g for g in groups if not g.first.spec.role]
    matched = [g for g in groups if g.first.spec.role == "compute-matched"]
    majority = majority_baseline(groups[0])
    config = groups[0].config
    labels = split_labels(config.data, config.split, config.split_seed)["test"]
    rows = [[g.label, spread(g.val, interval=False), spread(g.test)] for g in members]
    comparisons: list[Comparison] = []
    for scheme, cards in ensembles.items():
        accs = summarize_seeds([c["metrics"]["test"]["accuracy"] for c in cards])
        rows.append([f"**ensemble ({scheme} weights)**",
                     spread(summarize_seeds([c["metrics"]["val"]["accuracy"] for c in cards]),
                            interval=False), f"**{spread(accs)}**"])
        mine = [_predicted(c["predictions"]["test"]) for c in cards]
        seed_runs = [[g.seed_run(c["seed"]) for g in members] for c in cards]
        public = [max(runs, key=lambda r: r.val_acc) for runs in seed_runs]
        private = [max(runs, key=lambda r: r.test_acc()) for runs in seed_runs]
        if public == private:
            comparisons.append(_versus(
                f"ensemble ({scheme})", mine, [r.predicted("test") for r in public], labels,
                "the member chosen on PublicTest (in every seed also the best by PrivateTest)"))
        else:
            comparisons.append(_versus(f"ensemble ({scheme})", mine,
                                       [r.predicted("test") for r in public], labels,
                                       "the member chosen on PublicTest"))
            comparisons.append(_versus(f"ensemble ({scheme})", mine,
                                       [r.predicted("test") for r in private], labels,
                                       "the best member by PrivateTest (an oracle choice)"))
        for g in matched:
            if all(c["seed"] in g.seeds for c in cards):
                comparisons.append(_versus(
                    f"ensemble ({scheme})", mine,
                    [g.seed_run(c["seed"]).predicted("test") for c in cards], labels,
                    f"{g.label} (compute-matched)"))
    for g in matched:
        rows.append([f"{g.label} *(compute-matched baseline)*", spread(g.val, interval=False),
                     spread(g.test)])
    rows.append([f"majority class ({majority.name})", pct(majority.val), pct(majority.test)])
    if full and "members" in full:  # older results lack these two
        full = {"majority_test_acc": majority.test,
                "flip": study.options.get("full_data", {}).get("flip", False), **full}
    full_found = full_data_comparisons(full, labels) if full and "members" in full else []
    adjust([*full_found, *comparisons])
    bars = {g.label: g.test.mean for g in [*members, *matched]}
    errors = {g.label: g.test.sd for g in [*members, *matched]}
    for scheme, cards in ensembles.items():
        accs = summarize_seeds([c["metrics"]["test"]["accuracy"] for c in cards])
        bars[f"ensemble ({scheme})"], errors[f"ensemble ({scheme})"] = accs.mean, accs.sd
    png = plot_bars(bars, figures / "ensemble-test.png",
                    title="PrivateTest accuracy (mean ± sd over seeds)",
                    highlight="ensemble (rank)", errors=errors, baseline=majority.test)
    minutes = {g.label: g.minutes / len(g.runs) for g in [*members, *matched]}
    cost = (f"Compute: the three members together {sum(minutes[g.label] for g in members):.1f} "
            "min of training per seed" + "".join(
                f"; {g.label} {minutes[g.label]:.1f} min" for g in matched) + ".")
    if not matched:
        cost += (" The compute-matched baseline (the best member's architecture trained 3x "
                 "longer) has not run yet: see below.")
    lines = [header(study, command, results), *stale_note(results)]
    if full:
        lines += [full_data_text(full, full_found), ""]
    lines += ["## At the study budget", "",
              "Each seed's three members (the transfer and init studies' runs of that seed) make "
              "one ensemble per weighting scheme. An ensemble costs the training of all its "
              "members, so it is also compared with a single model given the same compute.", "",
              _table(["model", "val acc (PublicTest)", "test acc (PrivateTest)"], rows), "",
              cost, "", *[f"- {c.sentence()}" for c in comparisons], "",
              f"![test accuracy](figures/{png.name})", "",
              "Rank weights: members sorted by validation accuracy get ranks 1 (weakest) to n "
              "(best), w_i = R(A_i) / Σ R(A_j). The ensemble is one ONNX file (members resized "
              "to their own input size inside the graph) and predicts like any model: "
              "`emotrace ensemble RUN RUN ... --out ens.onnx`, then "
              "`emotrace predict photo.jpg --model ens.onnx`.", ""]
    # The study-budget ensemble (torch members) converts back for Grad-CAM; the full-data one
    # nests converted ONNX members, which onnx2torch cannot convert a second time.
    scheme, cards = next(iter(ensembles.items()))
    explain, explain_data = explain_section(
        Path(cards[0]["path"]), config.data, figures, "ensemble", explained=explained,
        subject=f"Explained: seed {cards[0]['seed']}'s study-budget ensemble with {scheme} "
                "weights. The full-data ensemble cannot be explained this way: its members are "
                "ONNX files converted once already, which onnx2torch cannot convert again.")
    lines += [explain, *pending_lines(study, results, command)]
    return "\n".join(lines), {**_group_data(groups, majority, []),
                              "ensembles": ensembles,
                              "ensemble_comparisons": [c.as_dict() for c in comparisons],
                              "full_data": {**(full or {}),
                                            "comparisons": [c.as_dict() for c in full_found]},
                              "gradcam": explain_data}

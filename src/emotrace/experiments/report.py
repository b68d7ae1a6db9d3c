"""Study reports: ``report.md`` with tables and figures, and ``results.json`` with every number.

Every configuration of a study runs with several seeds; tables give mean ± sd and a 95% t
interval over seeds, a majority-class row, and each headline comparison an exact McNemar test per
seed on the same test images (per-image predictions are in ``results.json``). One writer per
study kind (transfer, init, ladder, ensemble); the shared parts are small helpers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emotrace.evaluation.plots import (plot_bars, plot_class_heatmaps, plot_confusion,
                                       plot_curve_comparison, plot_explanations,
                                       plot_learning_curves)
from emotrace.evaluation.stats import (McNemar, SeedSummary, majority_class, mcnemar_exact,
                                       p_text, summarize_seeds)
from emotrace.experiments.results import RunResult
from emotrace.experiments.study import Study
from emotrace.utils import atomic_path

SPLIT_NAMES = {"val": "PublicTest", "test": "PrivateTest"}


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
    def minutes(self) -> float:
        return sum(r.minutes for r in self.runs)

    def summary(self, window: int = 5) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "seeds": self.seeds,
                "val_acc": self.val.as_dict(), "test_acc": self.test.as_dict(),
                "per_seed": [r.summary(window) for r in self.runs]}


def group_runs(results: list[RunResult]) -> list[Group]:
    """Runs grouped by configuration name, in study order."""
    names = list(dict.fromkeys(r.spec.name for r in results))
    return [Group([r for r in results if r.spec.name == name]) for name in names]


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
    config = group.first.spec.config
    labels = split_labels(config.data, config.split, config.split_seed)
    label = majority_class(labels["train"])
    return Majority(label, float(np.mean(labels["val"] == label)),
                    float(np.mean(labels["test"] == label)))


@dataclass
class Comparison:
    """``a`` vs ``b`` on the same images: per-seed accuracy differences and McNemar tests."""

    a: str
    b: str
    split: str
    differences: SeedSummary
    tests: list[McNemar]
    scheme: str = "official"

    @property
    def significant(self) -> bool:
        """Significant only when every seed's paired test is."""
        return bool(self.tests) and all(t.significant for t in self.tests)

    def sentence(self) -> str:
        ps = ", ".join(f"{t.p_value:.3g}" for t in self.tests)
        hits = sum(t.significant for t in self.tests)
        verdict = ("significant in every seed (p < 0.05)" if self.significant else
                   f"**not significant** (p < 0.05 in {hits} of {len(self.tests)} seeds)")
        one = p_text(self.tests[0].p_value) if len(self.tests) == 1 else None
        where = (SPLIT_NAMES[self.split] if self.scheme == "official"
                 else f"the {self.scheme} split's own {self.split} part")
        return (f"{self.a} − {self.b}: {spread(self.differences, unit=' points')} on "
                f"{where}; exact McNemar per seed "
                f"(paired, same images): p = {ps}: {one or verdict}.")

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "split": self.split, "split_scheme": self.scheme,
                "difference_points": {k: (np.array(v) * 100).tolist() if k == "values"
                                      else [x * 100 for x in v] if k == "ci95" else v * 100
                                      for k, v in self.differences.as_dict().items()},
                "mcnemar_per_seed": [t.as_dict() for t in self.tests],
                "significant_every_seed": self.significant}


def compare(a: Group, b: Group | Majority, split: str = "test") -> Comparison:
    """Seed i of ``a`` against seed i of ``b`` (or the majority class) on ``split``."""
    config = a.first.spec.config
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
    return Comparison(a.label, name, split, summarize_seeds(differences), tests, config.split)


def _devices(results: list[RunResult]) -> str:
    devices = sorted({r.device for r in results})
    return " and ".join(d.removeprefix("CPU: ").removeprefix("GPU: ") for d in devices)


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
        "Model selection uses the validation split only; each run's kept checkpoint is exported "
        "to ONNX (the file `emotrace predict` would use) and measured once on PublicTest and "
        "PrivateTest through the same preprocessing as validation during training. Accuracies "
        "are mean ± sd over seeds with the 95% t interval of the mean in brackets. Paired tests: "
        "exact McNemar (binomial on the images only one of the two models gets right), seed i "
        "against seed i, on the per-image predictions saved in `results.json`.", ""])


def _params(r: RunResult) -> str:
    text = f"{r.params / 1e6:.2f} M"
    if r.frozen_params:
        text += f" (+ {r.frozen_params / 1e6:.2f} M frozen)"
    if r.external_params:
        text += f" (+ {r.external_params / 1e6:.1f} M frozen in dlib)"
    return text


def run_table(groups: list[Group], majority: Majority) -> str:
    rows = []
    for g in groups:
        recall = g.over_seeds(lambda r: r.metrics.get("test", {}).get("macro_recall"))
        rows.append([g.label, _params(g.first), g.first.spec.config.epochs,
                     f"{g.minutes / len(g.runs):.1f} min",
                     spread(g.over_seeds(lambda r: r.stats["initial_val_acc"]), interval=False),
                     f"**{spread(g.val)}**", spread(g.test), spread(recall, interval=False)])
    rows.append([f"majority class ({majority.name})", "0", "–", "–", pct(majority.val),
                 pct(majority.val), pct(majority.test), "14.3%"])
    return _table(["run", "params trained", "epochs", "train time per seed", "epoch-1 val acc",
                   "best val acc", "test acc", "test macro recall"], rows)


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
        groups={g.label: g.first.spec.config.model for g in groups} if by_model else None)
    return f"![curves](figures/{png.name})"


def trained(history: list[dict]) -> list[dict]:
    return [row for row in history if row["epoch"] >= 1]


def explain_section(model: Path, data: str, figures: Path, name: str, per_class: int = 150,
                    examples: int = 4, subject: str = "") -> tuple[str, dict[str, Any]]:
    """Grad-CAM: mean heatmap per true class over a class-stratified test sample, and a few test
    faces with their heatmap and probability bars. ``subject`` names the explained model."""
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
    classes_png = plot_class_heatmaps(heatmaps, mean_faces, figures / f"gradcam-classes-{name}.png",
                                      title=f"mean Grad-CAM per true class ({name}, up to "
                                            f"{per_class} test faces per class; {side}x{side} "
                                            f"maps upsampled to {size}x{size})")
    chosen = [rng.choice(np.flatnonzero(faces.labels == c)) for c in (3, 0, 5, 4)][:examples]
    result = explainer.explain(faces.images[chosen])
    examples_png = plot_explanations(explainer.classifier.preprocess(faces.images[chosen])[:, 0],
                                     result.heatmaps, result.probs, result.targets,
                                     figures / f"gradcam-examples-{name}.png",
                                     title=f"{name}: Grad-CAM of the predicted class",
                                     captions=[f"true: {EMOTIONS[faces.labels[i]]}"
                                               for i in chosen])
    text = "\n".join([
        "## What the model looks at (Grad-CAM)", "",
        *([subject, ""] if subject else []),
        f"Top row: the mean face of each emotion over up to {per_class} PrivateTest faces per "
        f"class ({len(picks)} in all); bottom row: the mean Grad-CAM heatmap explaining the true "
        "class, on one colour scale (each face's map scaled to peak 1 before averaging). The "
        f"explained activation map is only {side}x{side} at this {size} px input: the heatmaps "
        "are that coarse grid upsampled bilinearly, so they locate regions (upper vs lower face), "
        "not features. Then four test faces with the heatmap of the predicted class and the "
        "probability of every class. Any model can be explained the same way: "
        "`emotrace explain FACE.jpg --model MODEL.onnx --save out.png`.", "",
        f"![class heatmaps](figures/{classes_png.name})", "",
        f"![examples](figures/{examples_png.name})", ""])
    return text, {"map_size": side, "input_size": size,
                  "faces_per_class": np.bincount(faces.labels[picks], minlength=7).tolist(),
                  "examples": [{"true": EMOTIONS[faces.labels[i]], "predicted": EMOTIONS[t],
                                "probs": p.round(4).tolist()}
                               for i, t, p in zip(chosen, result.targets, result.probs)]}


def _group_data(groups: list[Group], majority: Majority, comparisons: list[Comparison],
                window: int = 5) -> dict[str, Any]:
    return {"configurations": [g.summary(window) for g in groups],
            "majority_class": majority.as_dict(),
            "comparisons": [c.as_dict() for c in comparisons],
            "predictions_format": "per split, one digit (class index, EMOTIONS order) per image "
                                  "in dataset order (official split: the order of "
                                  "`select_split(load_dataset(data), split)`)"}


def transfer_report(study: Study, results: list[RunResult], command: str,
                    out: Path) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    groups = group_runs(results)
    majority = majority_baseline(groups[0])
    transfer = max((g for g in groups if g.first.spec.config.pretrained), key=lambda g: g.val.mean)
    baseline = next(g for g in groups if g.first.spec.config.model == "plain_cnn")
    headline = compare(transfer, baseline)
    floors = [compare(g, majority) for g in groups]
    lines = [header(study, command, results), "## Results", "", run_table(groups, majority), "",
             f"**Headline.** {headline.sentence()}", "",
             *[f"- {c.sentence()}" for c in floors], "",
             curve_figure(groups, figures / "val-curves.png",
                          "validation accuracy and loss per epoch (mean of seeds, min–max band)",
                          majority), "",
             "## Confusion matrices (PrivateTest, first seed)", "", *confusions(groups, figures),
             "", "## Learning curves (first seed)", "",
             *learning_curves(groups, figures, majority), ""]
    explain, explain_data = explain_section(transfer.first.run_dir / "model.onnx",
                                            transfer.first.spec.config.data, figures,
                                            transfer.name)
    lines.append(explain)
    return "\n".join(lines), {**_group_data(groups, majority, [headline, *floors]),
                              "gradcam": explain_data}


def _window_table(groups: list[Group], window: int) -> str:
    rows = []
    for g in groups:
        for w in g.first.windows(window):
            def value(r: RunResult, key: str, epochs: str = w["epochs"]) -> float:
                same = [x for x in r.windows(window) if x["epochs"] == epochs]
                return same[0][key] if same else float("nan")  # a seed that stopped early
            cell = {key: summarize_seeds([v for v in (value(r, key) for r in g.runs)
                                          if not np.isnan(v)])
                    for key in ("mcr_acc", "mcr_loss", "mofr_acc", "mofr_loss")}
            rows.append([g.label, w["epochs"], w["steps"],
                         spread(cell["mcr_acc"], unit="", digits=2, interval=False),
                         spread(cell["mcr_loss"], scale=1, digits=3, unit="", interval=False),
                         spread(cell["mofr_acc"], unit="", digits=2, interval=False),
                         spread(cell["mofr_loss"], scale=1, digits=3, unit="", interval=False)])
    return _table(["run", "epochs", "n (steps)", "MCR acc (pt/epoch)", "MCR loss (/epoch)",
                   "MOFR acc (pt/epoch)", "MOFR loss (/epoch)"], rows)


def _init_table(groups: list[Group], majority: Majority) -> str:
    rows = []
    for g in groups:
        config = g.first.spec.config
        rows.append([g.label, _params(g.first), f"{config.epochs}, lr {config.lr:g}",
                     spread(g.over_seeds(lambda r: r.history[0]["val_acc"]), interval=False)
                     if g.first.history[0]["epoch"] == 0 else "–",
                     spread(g.over_seeds(lambda r: r.stats["initial_val_acc"]), interval=False),
                     spread(g.over_seeds(lambda r: r.stats["mcr_acc"]), unit="", digits=2,
                            interval=False),
                     spread(g.over_seeds(lambda r: r.stats["mofr_acc"]), unit="", digits=2,
                            interval=False),
                     f"**{spread(g.val)}**", spread(g.test),
                     f"{g.minutes / len(g.runs):.1f} min"])
    rows.append([f"majority class ({majority.name})", "0", "–", pct(majority.val),
                 pct(majority.val), "0", "0", pct(majority.val), pct(majority.test), "–"])
    return _table(["run", "params trained", "epochs, LR", "epoch-0 val acc", "epoch-1 val acc",
                   "MCR acc (pt/epoch)", "MOFR acc (pt/epoch)", "best val acc", "test acc",
                   "train time per seed"], rows)


def _pairs(groups: list[Group]) -> list[tuple[Group, Group]]:
    """(pretrained, random) twins of the same backbone and split: every random-init recipe."""
    return [(pre, rand) for pre in groups if pre.first.spec.config.pretrained
            for rand in groups if not rand.first.spec.config.pretrained
            and rand.first.spec.config.model == pre.first.spec.config.model
            and rand.first.spec.config.split == pre.first.spec.config.split]


INIT_DEFINITIONS = (
    "MCR and MOFR follow the seed papers, with Metric_0 measured before the first epoch (the "
    "epoch-0 row) so every window has n steps: MCR = (1/n) Σ (M_i − M_{i−1}) of the training "
    "metric; MOFR = (1/n) Σ [(train_i − val_i) − (train_{i−1} − val_{i−1})], the growth per "
    "epoch of the train–validation gap. They are taken literally for accuracy and for loss: a "
    "learning model has MCR(acc) > 0 and MCR(loss) < 0; a widening gap (overfitting) gives "
    "MOFR(acc) > 0 and MOFR(loss) < 0. The training metric is measured like validation after "
    "every epoch (inference mode, no augmentation, plain cross-entropy, no label smoothing), so "
    "the gap compares like with like.")


def init_report(study: Study, results: list[RunResult], command: str, out: Path,
                skipped: list[str]) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    window = int(study.options.get("window", 5))
    groups = group_runs(results)
    lines, comparisons = [header(study, command, results)], []
    majority = majority_baseline(groups[0])
    baselines = {}
    for variant, title in (("official", "Official split (train / PublicTest)"),
                           ("stratified", "Stratified 70/10/20 split (split seed 42), the second "
                                          "paper's protocol")):
        group = [g for g in groups if g.first.spec.variant == variant]
        if not group:
            continue
        majority = baselines[variant] = majority_baseline(group[0])
        testable = [g for g in group if g.first.predictions]
        pairs = [(a, b) for a, b in _pairs(testable)]
        found = [compare(a, b) for a, b in pairs] + [
            compare(g, majority) for g in testable if not g.first.spec.config.pretrained]
        comparisons += found
        if variant == "stratified":
            note = ("Validation and test here are the stratified split's own 10% and 20% "
                    "(never the official PrivateTest, which is part of the pooled data these "
                    "runs train on).")
        else:
            note = ""
        lines += [f"## {title}", "", *([note, ""] if note else []), _init_table(group, majority), "",
                  *[f"- {c.sentence()}" for c in found], "",
                  curve_figure(group, figures / f"init-curves-{variant}.png",
                               f"{title}: pretrained (solid) vs random init (dashed)", majority,
                               dashed=tuple(g.label for g in group
                                            if not g.first.spec.config.pretrained),
                               by_model=True), "",
                  f"### Mean convergence rate and mean overfitting rate per {window} epochs", "",
                  _window_table(group, window), ""]
    lines += [INIT_DEFINITIONS, ""]
    lines += _face_section(groups)
    if skipped:
        lines += ["## Not run here", "", *[f"- {s}" for s in skipped], ""]
    return "\n".join(lines), {**_group_data(groups, majority, comparisons, window),
                              "majority_class": {v: m.as_dict() for v, m in baselines.items()},
                              "skipped": skipped}


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


def _face_section(groups: list[Group]) -> list[str]:
    faces = [g for g in groups if g.first.external_params]
    imagenet = [g for g in groups if g.first.spec.config.pretrained and not g.first.external_params
                and g.first.spec.variant == "official"]
    if not (faces and imagenet):
        return []
    from emotrace.data import load_dataset
    from emotrace.models.dlib import seconds_per_face

    face, best = faces[0], max(imagenet, key=lambda g: g.val.mean)
    cost = seconds_per_face(load_dataset(face.first.spec.config.data).images[:64])
    return ["## Face-recognition features", "",
            f"The dlib face descriptor with a trained head reaches {spread(face.val)} on "
            f"PublicTest against {spread(best.val)} for {best.label} fine-tuned at the same "
            f"budget: {_face_verdict(face, best)} It has no ONNX export, so no PrivateTest row "
            "or paired test. Its "
            "train time covers the head only: the descriptors are computed once beforehand "
            f"({cost * 1000:.0f} ms per face on this CPU, timed on 64 faces while writing this "
            "report) and cached.", ""]


def ladder_report(study: Study, results: list[RunResult], command: str,
                  out: Path) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    groups = group_runs(results)
    majority = majority_baseline(groups[0])
    reference = next(g for g in groups if g.name == "two-phase")
    rows, comparisons = [], []
    for g in groups:
        kept = ("last epoch" if g.first.spec.uses_last_epoch else "best (epochs " +
                ", ".join(str(r.stats["best_epoch"]) for r in g.runs) + ")")
        runs = ", ".join(str(r.history[-1]["epoch"]) for r in g.runs)
        if g is reference:
            delta = ""
        else:
            comparisons.append(compare(g, reference))
            comparisons[-1].b = "the two-phase reference"
            delta = (f"{spread(comparisons[-1].differences, unit='', interval=False)}; "
                     f"p = {', '.join(f'{t.p_value:.2g}' for t in comparisons[-1].tests)}")
        rows.append([g.label, f"**{spread(g.val)}**", spread(g.test), delta, kept, runs,
                     f"{g.minutes / len(g.runs):.1f} min"])
    rows.append([f"majority class ({majority.name})", pct(majority.val), pct(majority.test),
                 "", "", "", ""])
    lines = [header(study, command, results), "## What each step adds", "",
             _table(["step", "val acc", "test acc",
                     "test vs two-phase (pt, per-seed McNemar p)", "weights kept", "epochs run",
                     "train time per seed"], rows), "",
             "Each row below the reference changes one thing against the two-phase Adam recipe "
             "with augmentation and callbacks; differences are on PrivateTest, seed against "
             "seed.", "", *[f"- {c.sentence()}" for c in comparisons], "",
             _callback_sentence(groups, reference), "",
             curve_figure(groups, figures / "ladder-curves.png",
                          "validation curves per step (mean of seeds, min–max band)", majority),
             "", "## Learning curves (first seed)", "",
             "The dashed line marks the start of phase 2 (top blocks unfrozen).", "",
             *learning_curves(groups, figures, majority), ""]
    return "\n".join(lines), {**_group_data(groups, majority, comparisons),
                              "reference": reference.name}


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
        same = [a.seed for a in g.runs if [r["val_acc"] for r in a.history] ==
                [r["val_acc"] for r in reference.seed_run(a.seed).history]]
        if same:
            text += (f" In seed(s) {', '.join(map(str, same))} \"{g.label}\" trained exactly like "
                     "the reference (no callback fired there): that seed measures only keeping "
                     "the last epoch instead of the best.")
    return text


def ensemble_report(study: Study, results: list[RunResult], command: str, out: Path,
                    ensembles: dict[str, list[dict[str, Any]]],
                    full: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``ensembles``: per scheme, one ensemble card per seed (built from that seed's members);
    ``full``: the section on members trained on the full training split, when given."""
    figures = out / "figures"
    groups = group_runs(results)
    majority = majority_baseline(groups[0])
    config = groups[0].first.spec.config
    labels = split_labels(config.data, config.split, config.split_seed)["test"]
    rows = [[g.label, spread(g.val, interval=False), spread(g.test)] for g in groups]
    comparisons: list[dict[str, Any]] = []
    lines_tests = []
    for scheme, cards in ensembles.items():
        accs = summarize_seeds([c["metrics"]["test"]["accuracy"] for c in cards])
        rows.append([f"**ensemble ({scheme} weights)**",
                     spread(summarize_seeds([c["metrics"]["val"]["accuracy"] for c in cards]),
                            interval=False), f"**{spread(accs)}**"])
        tests, gains = [], []
        for card in cards:
            seed_runs = [g.seed_run(card["seed"]) for g in groups]
            chosen = max(seed_runs, key=lambda r: r.val_acc)  # as a user would, on validation
            mine = np.array(list(card["predictions"]["test"]), dtype=int)
            tests.append(mcnemar_exact(labels, mine, chosen.predicted("test")))
            gains.append(float(np.mean(mine == labels) - chosen.test_acc()))
        comparison = Comparison(f"ensemble ({scheme})", "the member chosen on PublicTest",
                                "test", summarize_seeds(gains), tests)
        comparisons.append(comparison.as_dict())
        lines_tests.append(f"- {comparison.sentence()}")
    rows.append([f"majority class ({majority.name})", pct(majority.val), pct(majority.test)])
    bars = {g.label: g.test.mean for g in groups}
    errors = {g.label: g.test.sd for g in groups}
    for scheme, cards in ensembles.items():
        accs = summarize_seeds([c["metrics"]["test"]["accuracy"] for c in cards])
        bars[f"ensemble ({scheme})"], errors[f"ensemble ({scheme})"] = accs.mean, accs.sd
    png = plot_bars(bars, figures / "ensemble-test.png",
                    title="PrivateTest accuracy (mean ± sd over seeds)",
                    highlight="ensemble (rank)", errors=errors, baseline=majority.test)
    lines = [header(study, command, results)]
    if full:
        lines += [full["text"], ""]
    lines += ["## At the study budget", "",
              "Each seed's three members (the transfer and init studies' runs of that seed) make "
              "one ensemble per weighting scheme.", "",
              _table(["model", "val acc", "test acc"], rows), "", *lines_tests, "",
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
        Path(cards[0]["path"]), config.data, figures, "ensemble",
        subject=f"Explained: seed {cards[0]['seed']}'s study-budget ensemble with {scheme} "
                "weights. The full-data ensemble cannot be explained this way: its members are "
                "ONNX files converted once already, which onnx2torch cannot convert again.")
    lines.append(explain)
    return "\n".join(lines), {**_group_data(groups, majority, []),
                              "ensembles": ensembles, "ensemble_comparisons": comparisons,
                              "full_data": {k: v for k, v in (full or {}).items() if k != "text"},
                              "gradcam": explain_data}

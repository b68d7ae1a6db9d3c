"""Study reports: ``report.md`` with tables and figures, and ``results.json`` with every number.

One writer per study kind (transfer, init, ladder, ensemble); the shared parts (header, run table,
curves, Grad-CAM) are small helpers."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from emotrace.evaluation.plots import (plot_bars, plot_class_heatmaps, plot_confusion,
                                       plot_curve_comparison, plot_explanations,
                                       plot_learning_curves)
from emotrace.experiments.results import RunResult
from emotrace.experiments.study import Study
from emotrace.utils import atomic_path


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine() -> str:
    import os
    return f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU"


def header(study: Study, command: str, results: list[RunResult], extra_minutes: float = 0) -> str:
    b = study.budget
    minutes = sum(r.minutes for r in results) + extra_minutes
    return "\n".join([
        f"# {study.title}", "",
        f"Reproduce: `{command}`", "",
        f"**Question.** {study.question}", "",
        f"**Budget.** {b['epochs']} epochs, {b['image_size']} px input (unless a run says "
        f"otherwise), {b['subset']:.0%} of the training split (class-stratified, seed 42) of "
        f"`{study.runs[0].config.data}`;"
        f" validation and test splits whole (PublicTest and PrivateTest on the official split)."
        f" Trained on {_machine()}: "
        f"{minutes:.0f} min of training in all for this report's runs (runs shared with other "
        "studies are trained once). The same command scales up unchanged on a GPU, e.g. "
        f"`{command.split(' --')[0]} --epochs 30 --image-size 224 --subset 1`.", "",
        "Model selection uses the validation split only; test accuracy is measured once per run "
        "on its best-validation checkpoint, exported to ONNX (the file `emotrace predict` would "
        "use).", ""])


def run_table(results: list[RunResult], test: bool = True) -> str:
    head = ["run", "params (trained)", "epochs", "train time", "epoch-1 val acc",
            "best val acc", "test acc" if test else None, "test macro recall" if test else None]
    rows = []
    for r in results:
        metrics = r.metrics.get("test", {})
        row = [r.label, f"{r.params / 1e6:.2f} M", len(r.history), f"{r.minutes:.1f} min",
               pct(r.stats["initial_val_acc"]), f"**{pct(r.val_acc)}**"]
        if test:
            row += [pct(metrics.get("accuracy")), pct(metrics.get("macro_recall"))]
        rows.append(row)
    return _table([h for h in head if h], rows)


def write_outputs(out: Path, report: str, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(report.rstrip() + "\n")
    return out / "report.md"


def learning_curves(results: list[RunResult], figures: Path) -> list[str]:
    lines = []
    for r in results:
        png = plot_learning_curves(r.history, figures / f"curves-{r.spec.name}.png", title=r.label)
        lines.append(f"![learning curves: {r.label}](figures/{png.name})")
    return lines


def confusions(results: list[RunResult], figures: Path) -> list[str]:
    lines = []
    for r in results:
        if "test" not in r.metrics:
            continue
        m = r.metrics["test"]
        png = plot_confusion(np.array(m["confusion"]), figures / f"confusion-{r.spec.name}.png",
                             title=f"{r.label}: PrivateTest {m['accuracy']:.1%}")
        lines.append(f"![confusion: {r.label}](figures/{png.name})")
    return lines


def explain_section(model: Path, data: str, figures: Path, name: str, per_class: int = 150,
                    examples: int = 4) -> tuple[str, dict[str, Any]]:
    """Grad-CAM: mean heatmap per true class over a class-stratified test sample, and a few test
    faces with their heatmap and probability bars."""
    from emotrace.data import load_dataset, select_split
    from emotrace.data.labels import EMOTIONS
    from emotrace.evaluation.gradcam import GradCAM, class_mean_heatmaps

    faces = select_split(load_dataset(data), "test")
    rng = np.random.default_rng(42)
    picks = np.concatenate([rng.permutation(np.flatnonzero(faces.labels == c))[:per_class]
                            for c in range(len(EMOTIONS))])
    explainer = GradCAM(model)
    heatmaps, mean_faces = class_mean_heatmaps(explainer, faces.images[picks], faces.labels[picks])
    classes_png = plot_class_heatmaps(heatmaps, mean_faces, figures / f"gradcam-classes-{name}.png",
                                      title=f"mean Grad-CAM per true class ({name}, up to "
                                            f"{per_class} test faces per class)")
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
        f"Mean Grad-CAM heatmap of each emotion over up to {per_class} PrivateTest faces per "
        f"class ({len(picks)} in all; explaining the true class), drawn over that class's mean "
        "face; then four test faces "
        "with the heatmap of the predicted class and the probability of every class. "
        f"Any model can be explained the same way: `emotrace explain FACE.jpg --model MODEL.onnx "
        f"--save out.png`.", "",
        f"![class heatmaps](figures/{classes_png.name})", "",
        f"![examples](figures/{examples_png.name})", ""])
    return text, {"faces_per_class": np.bincount(faces.labels[picks], minlength=7).tolist(),
                  "examples": [{"true": EMOTIONS[faces.labels[i]], "predicted": EMOTIONS[t],
                                "probs": p.round(4).tolist()}
                               for i, t, p in zip(chosen, result.targets, result.probs)]}


def transfer_report(study: Study, results: list[RunResult], command: str,
                    out: Path) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    best = max(results, key=lambda r: r.val_acc)
    baseline = next((r for r in results if r.spec.config.model == "plain_cnn"), results[-1])
    gap = best.test_acc() - baseline.test_acc() if best is not baseline else 0.0
    compare = plot_curve_comparison({r.label: r.history for r in results},
                                    figures / "val-curves.png",
                                    title="validation accuracy and loss per epoch")
    lines = [header(study, command, results), "## Results", "", run_table(results), "",
             f"At this budget, {best.label} reaches {pct(best.test_acc())} on PrivateTest, "
             f"{gap * 100:+.1f} points over {baseline.label} ({pct(baseline.test_acc())}).", "",
             f"![validation curves](figures/{compare.name})", "",
             "## Confusion matrices (PrivateTest)", "", *confusions(results, figures), "",
             "## Learning curves", "", *learning_curves(results, figures), ""]
    explain, explain_data = explain_section(best.run_dir / "model.onnx", best.spec.config.data,
                                            figures, best.spec.name)
    lines.append(explain)
    return "\n".join(lines), {"runs": [r.summary() for r in results], "gradcam": explain_data,
                              "test_gap_points": gap * 100}


def _window_table(results: list[RunResult], window: int) -> str:
    rows = []
    for r in results:
        for w in r.windows(window):
            rows.append([r.label, w["epochs"], f"{w['mcr_acc'] * 100:+.2f}",
                         f"{w['mcr_loss']:+.3f}", f"{w['mofr_acc'] * 100:+.2f}",
                         f"{w['mofr_loss']:+.3f}"])
    return _table(["run", "epochs", "MCR acc (pt/epoch)", "MCR loss (/epoch)", "MOFR acc (pt)",
                   "MOFR loss"], rows)


def _init_table(results: list[RunResult]) -> str:
    rows = []
    for r in results:
        s = r.stats
        trained = f"{r.params / 1e6:.2f} M"
        if r.frozen_params:
            trained += f" (+ {r.frozen_params / 1e6:.1f} M frozen in dlib)"
        rows.append([r.label, trained, pct(s["initial_val_acc"]), f"{s['initial_val_loss']:.3f}",
                     f"{s['mcr_acc'] * 100:+.2f}", f"{s['mofr_acc'] * 100:+.2f}",
                     f"**{pct(s['best_val_acc'])}**", pct(s["final_val_acc"]),
                     f"{r.minutes:.1f} min"])
    return _table(["run", "params", "epoch-1 val acc", "epoch-1 val loss", "MCR acc (pt/epoch)",
                   "MOFR acc (pt)", "best val acc", "final val acc", "train time"], rows)


def _pairs(results: list[RunResult]) -> list[tuple[RunResult, RunResult]]:
    """(pretrained, random) twins: same config apart from ``pretrained``."""
    pairs = []
    for pre in results:
        if not pre.spec.config.pretrained:
            continue
        for rand in results:
            if (not rand.spec.config.pretrained and rand.spec.config.model == pre.spec.config.model
                    and rand.spec.config.split == pre.spec.config.split):
                pairs.append((pre, rand))
    return pairs


def init_report(study: Study, results: list[RunResult], command: str, out: Path,
                skipped: list[str]) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    window = int(study.options.get("window", 5))
    lines = [header(study, command, results)]
    for variant, title in (("official", "Official split (train / PublicTest)"),
                           ("stratified", "Stratified 70/10/20 split (seed 42), the second "
                                          "paper's protocol")):
        group = [r for r in results if r.spec.variant == variant]
        if not group:
            continue
        pairs = _pairs(group)
        dashed = tuple(r.label for r in group if not r.spec.config.pretrained)
        png = plot_curve_comparison({r.label: r.history for r in group},
                                    figures / f"init-curves-{variant}.png", dashed=dashed,
                                    groups={r.label: r.spec.config.model for r in group},
                                    title=f"{title}: pretrained (solid) vs random init (dashed)")
        lines += [f"## {title}", "", _init_table(group), "",
                  *[f"- **{pre.label}** vs random init: best val accuracy "
                    f"{(pre.val_acc - rand.val_acc) * 100:+.1f} points, epoch-1 val accuracy "
                    f"{(pre.stats['initial_val_acc'] - rand.stats['initial_val_acc']) * 100:+.1f}"
                    f" points." for pre, rand in pairs], "",
                  f"![curves](figures/{png.name})", "",
                  f"### Mean convergence rate and mean overfitting rate per {window} epochs", "",
                  _window_table(group, window), ""]
    lines += ["MCR (accuracy) is the mean per-epoch gain of training accuracy over the window "
              "(from the epoch before it); MCR (loss) the mean per-epoch drop of training loss. "
              "MOFR (accuracy) is the mean of train − validation accuracy over the window, MOFR "
              "(loss) the mean of validation − training loss: larger means more overfitting. "
              "Training accuracy is measured on augmented images with label smoothing, so early "
              "MOFR can be negative.", ""]
    faces = [r for r in results if r.frozen_params]
    imagenet = [r for r in results if r.spec.config.pretrained and not r.frozen_params
                and r.spec.variant == "official"]
    if faces and imagenet:
        from emotrace.data import load_dataset
        from emotrace.models.dlib import seconds_per_face

        best = max(imagenet, key=lambda r: r.val_acc)
        cost = seconds_per_face(load_dataset(faces[0].spec.config.data).images[:64])
        lines += ["## Face-recognition features", "",
                  f"The dlib face descriptor with a trained head reaches {pct(faces[0].val_acc)} "
                  f"against {pct(best.val_acc)} for {best.label} fine-tuned at the same budget "
                  f"({(faces[0].val_acc - best.val_acc) * 100:+.1f} points). A descriptor "
                  "trained to tell people apart is built to ignore their expression; here it "
                  "does not support the hypothesis that face-recognition features transfer "
                  "better. Its train time covers the head only: the descriptors are computed "
                  f"once beforehand ({cost * 1000:.0f} ms per face on this CPU, timed on 64 "
                  "faces while writing this report) and cached.", ""]
    if skipped:
        lines += ["## Not run here", "", *[f"- {s}" for s in skipped], ""]
    data = {"runs": [r.summary(window) for r in results], "skipped": skipped,
            "dlib_seconds_per_face": cost if faces and imagenet else None,
            "pairs": [{"pretrained": p.spec.name, "random": q.spec.name,
                       "best_val_gain_points": (p.val_acc - q.val_acc) * 100}
                      for p, q in _pairs(results)]}
    return "\n".join(lines), data


def ladder_report(study: Study, results: list[RunResult], command: str,
                  out: Path) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    reference = next(r for r in results if r.spec.name == "two-phase")
    rows = []
    for r in results:
        stopped = "early stop" if len(r.history) < r.spec.config.epochs else ""
        kept = "last epoch" if r.spec.uses_last_epoch else f"best (epoch {r.stats['best_epoch']})"
        delta = "" if r is reference else f"{(r.val_acc - reference.val_acc) * 100:+.1f}"
        rows.append([r.label, f"**{pct(r.val_acc)}**", delta, kept,
                     f"{len(r.history)} {stopped}".strip(), pct(r.test_acc()),
                     f"{r.minutes:.1f} min"])
    png = plot_curve_comparison({r.label: r.history for r in results},
                                figures / "ladder-curves.png", title="validation curves per step")
    head = results[0]
    lines = [header(study, command, results), "## What each step adds", "",
             _table(["step", "val acc", "vs two-phase Adam (pt)", "weights kept", "epochs run",
                     "test acc", "train time"], rows), "",
             f"Phase 2 adds {(reference.val_acc - head.val_acc) * 100:+.1f} points of validation "
             f"accuracy over training the head alone ({pct(head.val_acc)} → "
             f"{pct(reference.val_acc)}). Rows below it change one thing against the two-phase "
             "Adam recipe with augmentation and callbacks.", "",
             _callback_sentence(results), "",
             f"![curves](figures/{png.name})", "", "## Learning curves", "",
             "The dashed line marks the start of phase 2 (top blocks unfrozen).", "",
             *learning_curves(results, figures), ""]
    return "\n".join(lines), {"runs": [r.summary() for r in results],
                              "reference": reference.spec.name}


def _callback_sentence(results: list[RunResult]) -> str:
    """What the callbacks did: early stops, learning-rate cuts on plateau, best vs last epoch."""
    stopped = [f"\"{r.label}\" at epoch {len(r.history)} (best {r.stats['best_epoch']})"
               for r in results if len(r.history) < r.spec.config.epochs]
    cuts = [f"\"{r.label}\"" for r in results
            if any(b["lr"] < a["lr"] and b["phase"] == a["phase"]
                   for a, b in zip(r.history, r.history[1:]))]
    gains = [(r.stats["best_val_acc"] - r.history[-1]["val_acc"]) * 100 for r in results
             if not r.spec.uses_last_epoch]
    return (f"Callbacks: EarlyStopping stopped {'; '.join(stopped) if stopped else 'no run'}. "
            f"ReduceLROnPlateau lowered the learning rate in {', '.join(cuts) if cuts else 'no run'}"
            f" within the budget. Keeping the best checkpoint instead of the last epoch gained "
            f"{max(gains, default=0):.1f} points at most.")


def ensemble_report(study: Study, results: list[RunResult], command: str, out: Path,
                    ensembles: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    figures = out / "figures"
    best = max(results, key=lambda r: r.val_acc)  # chosen on validation, as a user would
    best_test = max(r.test_acc() for r in results)
    rows = [[r.label, pct(r.val_acc), pct(r.test_acc()),
             *[f"{next(m['weight'] for m in card['ensemble']['members'] if m['run'] == str(r.run_dir)):.3f}"
               for card in ensembles.values()]] for r in results]
    for scheme, card in ensembles.items():
        rows.append([f"**ensemble ({scheme} weights)**", pct(card["metrics"]["val"]["accuracy"]),
                     f"**{pct(card['metrics']['test']['accuracy'])}**"] + [""] * len(ensembles))
    bars = {r.label: r.test_acc() for r in results}
    bars |= {f"ensemble ({s})": c["metrics"]["test"]["accuracy"] for s, c in ensembles.items()}
    png = plot_bars(bars, figures / "ensemble-test.png", title="PrivateTest accuracy",
                    highlight="ensemble (rank)")
    main = ensembles.get("rank") or next(iter(ensembles.values()))
    gain = main["metrics"]["test"]["accuracy"] - best_test
    confusion = plot_confusion(np.array(main["metrics"]["test"]["confusion"]),
                               figures / "confusion-ensemble.png",
                               title=f"rank-weighted ensemble: PrivateTest "
                                     f"{main['metrics']['test']['accuracy']:.1%}")
    lines = [header(study, command, results), "## Members and ensembles", "",
             _table(["model", "val acc", "test acc",
                     *[f"weight ({s})" for s in ensembles]], rows), "",
             f"The rank-weighted ensemble scores {pct(main['metrics']['test']['accuracy'])} on "
             f"PrivateTest: **{gain * 100:+.1f} points** over the best member on that split "
             f"({pct(best_test)}); the member a user would pick on validation is {best.label}.",
             "", f"![test accuracy](figures/{png.name})", "",
             f"![confusion](figures/{confusion.name})", "",
             "Rank weights: members sorted by validation accuracy get ranks 1 (weakest) to n "
             "(best), w_i = R(A_i) / Σ R(A_j). The ensemble is one ONNX file (members resized "
             "to their own input size inside the graph) and predicts like any model: "
             "`emotrace ensemble RUN RUN ... --out ens.onnx`, then "
             "`emotrace predict photo.jpg --model ens.onnx`.", ""]
    explain, explain_data = explain_section(Path(main["path"]), best.spec.config.data, figures,
                                            "ensemble")
    lines.append(explain)
    return "\n".join(lines), {"members": [r.summary() for r in results], "ensembles": ensembles,
                              "gain_over_best_member_points": gain * 100, "gradcam": explain_data}

"""Sub-command bodies: turn parsed arguments into API calls and print the results."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from typing import TYPE_CHECKING

import yaml

from emotrace.config import MODEL_HELP
from emotrace.errors import EmotraceError, UsageError, requires_extra  # noqa: F401 (API)

if TYPE_CHECKING:
    from emotrace.cards import ModelCard

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2



def _add_built_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that build one ONNX model from others (ensemble, soup)."""
    parser.add_argument("--out", required=True, help="ONNX file to write (card next to it)")
    parser.add_argument("--name", help="model name recorded in the card")
    parser.add_argument("--flip", action="store_true",
                        help="also average each face's mirror image (twice the compute)")
    parser.add_argument("--test", action="store_true",
                        help="also measure the test split (PrivateTest) for the card")


def run(args: argparse.Namespace, command_line: list[str] | None = None) -> int:
    """Call the chosen command. Mistakes the user can fix (:class:`EmotraceError`: a missing
    file, a bad option, an unreadable dataset) are one line and exit code 2; anything else is a
    bug in emotrace: one line asking to report it, the traceback with ``--debug``."""
    args.command_line = command_line if command_line is not None else []
    try:
        return args.run(args)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (utils.Interrupted)
        print(f"emotrace {args.command}: interrupted", file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    except EmotraceError as error:
        print(f"emotrace {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # a bug, not bad input: keep the traceback one switch away
        stop = _interruption_behind(error)
        if stop is not None:
            print(f"emotrace {args.command}: interrupted", file=sys.stderr)
            return getattr(stop, "exit_code", 130)
        if args.debug or os.environ.get("EMOTRACE_DEBUG"):
            raise
        print(f"emotrace {args.command}: internal error: {type(error).__name__}: {error}\n"
              "This is a bug in emotrace; please report it with the command you ran. "
              "Run again with --debug (or EMOTRACE_DEBUG=1) to see the traceback.", file=sys.stderr)
        return EXIT_FAILED


def _interruption_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that caused ``error``, if one did: an extension module interrupted
    while it loads reports ``ImportError: initialization failed`` (onnxruntime, in 5 of 41 runs
    given SIGINT 0.3-0.7 s into ``predict face.jpg``), which is not a bug to report."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def recorded_command(args: argparse.Namespace) -> str:
    """The command line as typed, for run folders and model cards."""
    return "emotrace " + shlex.join(args.command_line)


def _overrides(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace train``: its options, beside its body."""
    parser = sub.add_parser("train", help="fine-tune a model from a preset (resumable)",
                            description="Train a model from a preset or YAML recipe. Re-running "
                                        "with the same --out resumes from its last checkpoint.")
    parser.add_argument("--preset", default="mobilenetv2-fer2013-cpu",
                        help="preset name or YAML file (default: %(default)s; see --list-presets)")
    parser.add_argument("--data", help="dataset path (overrides the preset's)")
    parser.add_argument("--out", help="run folder (default: runs/PRESET)")
    parser.add_argument("--epochs", type=int, help="override the preset's epoch count")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe option, e.g. --set lr=3e-4 (YAML values)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out has a run")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    parser.set_defaults(run=train)


def train(args: argparse.Namespace) -> int:
    with requires_extra("train", "training"):
        from emotrace.training import export_run, list_presets, load_config, train as fit
    if args.list_presets:
        for name in list_presets():
            print(name)
        return EXIT_OK
    overrides = _overrides(args.set)
    if args.data:
        overrides["data"] = args.data
    if args.epochs:
        overrides["epochs"] = args.epochs
    config = load_config(args.preset, **overrides)
    out = Path(args.out or Path("runs") / Path(args.preset).stem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "command.txt").write_text(recorded_command(args) + "\n")
    best = fit(config, out, resume=not args.no_resume)
    print(f"best checkpoint: {best}")
    if not args.no_export:
        model = export_run(out, command=recorded_command(args))
        print(f"exported: {model}")
    return EXIT_OK


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace calibrate``: its options, beside its body."""
    parser = sub.add_parser("calibrate", help="fit temperature scaling so scores mean what "
                                              "they say",
                            description="Fit the temperature of an exported model on the "
                                        "validation split (PublicTest) and write it, with the "
                                        "expected calibration error (15 bins) before and "
                                        "after, into the model's card. Predictions then use "
                                        "the calibrated scores; the predicted class never "
                                        "changes.")
    parser.add_argument("model", metavar="MODEL", help="exported .onnx model (card beside it)")
    parser.add_argument("--data", required=True, help="dataset path (FER-2013 layout)")
    parser.add_argument("--test", action="store_true",
                        help="also measure the ECE on the test split (PrivateTest)")
    parser.set_defaults(run=calibrate)


def calibrate(args: argparse.Namespace) -> int:
    from emotrace.evaluation.calibration import calibrate_model
    from emotrace.inference.classifier import SHIPPED_MODELS

    if args.model in SHIPPED_MODELS or not args.model.endswith(".onnx"):
        raise UsageError(f"{args.model}: give an exported .onnx file (a shipped model is "
                         "calibrated already)")
    if not Path(args.model).is_file():
        raise UsageError(f"{args.model}: file not found")
    calibration = calibrate_model(args.model, args.data, test=args.test)
    print(f"temperature {calibration['temperature']:.3f} (fitted on the validation split)")
    for split, ece in calibration["ece"].items():
        print(f"{split}: ECE {ece['before']:.2%} -> {ece['after']:.2%}")
    print(f"written into {Path(args.model).with_suffix('.json')}")
    return EXIT_OK


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace evaluate``: its options, beside its body."""
    parser = sub.add_parser("evaluate", help="accuracy, per-class metrics, confusion matrix",
                            description="Evaluate an emotion model on a labelled dataset "
                                        "(FER-2013 folders, Kaggle CSV or class folders); "
                                        "each image is taken as a face crop.")
    parser.add_argument("--data", required=True, help="dataset path")
    parser.add_argument("--split", help="train, val (PublicTest), test (PrivateTest) or all "
                                        "(default: all)")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--out", metavar="DIR",
                        help="write metrics.json, confusion.json and confusion.png there")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable image instead of skipping it")
    parser.set_defaults(run=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    import json

    from emotrace.evaluation import evaluate as run_evaluation
    from emotrace.inference import EmotionClassifier

    from emotrace.utils import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    classifier = EmotionClassifier(args.model)
    result = run_evaluation(classifier, args.data, split=args.split, strict=args.strict)
    summary = result.summary()
    if args.out:
        files = result.save(args.out)
    if summary["skipped"]:
        names = ", ".join(f"{s['file']} ({s['reason']})" for s in summary["skipped_files"][:3])
        more = summary["skipped"] - min(3, summary["skipped"])
        print(f"emotrace evaluate: skipped {summary['skipped']} unreadable image(s): {names}"
              + (f" and {more} more" if more else "") + "; the metrics cover the others "
              "(--strict stops at the first instead)", file=sys.stderr)
    status = EXIT_FAILED if summary["skipped"] else EXIT_OK
    if args.json:
        print(json.dumps({"model": classifier.name, "split": result.split, **summary}))
        return status
    print(f"model {classifier.name} on {args.data} ({result.split}): n={summary['n']}")
    print(f"accuracy {summary['accuracy']:.2%}   macro recall {summary['macro_recall']:.2%}   "
          f"macro F1 {summary['macro_f1']:.2%}")
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, row in summary["per_class"].items():
        print(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}"
              f"{row['support']:>10d}")
    if args.out:
        print("wrote " + ", ".join(str(p) for p in files.values()))
    return status


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace export``: its options, beside its body."""
    parser = sub.add_parser("export", help="export a trained run to ONNX with its model card",
                            description="Export RUN/best.ckpt to ONNX and write the model card "
                                        "(metrics measured on the exported file).")
    parser.add_argument("run_dir", metavar="RUN", help="run folder made by 'emotrace train'")
    parser.add_argument("--out", help="ONNX file to write (default: RUN/model.onnx)")
    parser.add_argument("--name", help="model name recorded in the card")
    parser.add_argument("--flip", action="store_true",
                        help="average in the mirror image's prediction (a little more accurate, "
                             "twice the compute per face)")
    parser.add_argument("--test", action="store_true",
                        help="also measure the test split (PrivateTest) for the card")
    parser.set_defaults(run=export)


def export(args: argparse.Namespace) -> int:
    with requires_extra("train", "export"):
        from emotrace.training import export_run
    splits = ("val", "test") if args.test else ("val",)
    out = export_run(args.run_dir, out=args.out, flip_average=args.flip, evaluate_splits=splits,
                     name=args.name, command=recorded_command(args))
    print(f"exported {out} and its card {out.with_suffix('.json')}")
    return EXIT_OK


def add_curves_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace curves``: its options, beside its body."""
    parser = sub.add_parser("curves", help="learning curves and MCR/MOFR of a training run")
    parser.add_argument("run_dir", metavar="RUN", help="run folder made by 'emotrace train'")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: the run folder)")
    parser.add_argument("--window", type=int, default=5, help="epochs per MCR/MOFR row")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    parser.set_defaults(run=curves)


def curves(args: argparse.Namespace) -> int:
    import json

    from emotrace.evaluation import (convergence_stats, plot_learning_curves, read_history,
                                     windowed_stats)

    history_file = Path(args.run_dir) / "history.csv"
    if not history_file.is_file():
        raise UsageError(f"{history_file} not found: give a run folder made by 'emotrace train'")
    history = read_history(history_file)
    stats = {"overall": convergence_stats(history), "windows": windowed_stats(history, args.window)}
    out = Path(args.out or args.run_dir)
    png = plot_learning_curves(history, out / "learning_curves.png", title=Path(args.run_dir).name)
    (out / "convergence.json").write_text(json.dumps(stats, indent=2))
    if args.json:
        print(json.dumps(stats))
    else:
        overall = stats["overall"]
        print(f"epochs {history[-1]['epoch']}  best val acc {overall['best_val_acc']:.2%} "
              f"(epoch {overall['best_epoch']})  initial val acc {overall['initial_val_acc']:.2%}")
        print(f"{'epochs':<8}{'MCR acc':>9}{'MCR loss':>10}{'MOFR acc':>10}{'MOFR loss':>11}")
        for row in stats["windows"]:
            print(f"{row['epochs']:<8}{row['mcr_acc']:>9.4f}{row['mcr_loss']:>10.4f}"
                  f"{row['mofr_acc']:>10.4f}{row['mofr_loss']:>11.4f}")
        print(f"wrote {png} and {out / 'convergence.json'}")
    return EXIT_OK


def _parse_weights(text: str) -> str | list[float]:
    if text in ("rank", "equal"):
        return text
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights takes rank, equal or numbers like 0.5,0.3,0.2; got {text!r}")


def _report_built(what: str, out: Path, card: ModelCard) -> None:
    """A built model's measured accuracies and where it and its card went."""
    for split, metrics in card.metrics.items():
        print(f"{what} {split} accuracy {metrics['accuracy']:.2%}")
    print(f"exported {out} and its card {out.with_suffix('.json')}")


def add_ensemble_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace ensemble``: its options, beside its body."""
    parser = sub.add_parser("ensemble", help="combine trained runs into one ONNX model",
                            description="Average the probabilities of trained runs, weighted "
                                        "by the rank of their validation accuracy (w_i = "
                                        "R(A_i) / sum R(A_j)), equally, or by your weights. "
                                        "The result predicts like any model (--model).")
    parser.add_argument("runs", nargs="+", metavar="MEMBER",
                        help="run folders made by 'emotrace train' or 'emotrace study', or "
                             "exported .onnx models (with their cards)")
    _add_built_model_options(parser)
    parser.add_argument("--weights", default="rank", metavar="rank|equal|W,W,...",
                        help="weighting (default: %(default)s)")
    parser.add_argument("--zoom", type=float, action="append", default=[], metavar="Z",
                        help="also average a closer view: the central Z share of the face "
                             "(0.5 <= Z < 1, e.g. 0.92), resized back; repeat for more views")
    parser.add_argument("--half-weights", action="store_true",
                        help="store the weights as float16: half the file, computed in float32")
    parser.set_defaults(run=ensemble)


def ensemble(args: argparse.Namespace) -> int:
    with requires_extra("train", "ensemble"):
        from emotrace.training.ensemble import build_ensemble
    for member in args.runs:
        if not (Path(member) / "best.ckpt").is_file() and not (
                member.endswith(".onnx") and Path(member).is_file()):
            raise UsageError(f"{member}: neither a finished training run (no best.ckpt there) "
                             "nor an exported .onnx model")
    out = build_ensemble(args.runs, args.out, weights=_parse_weights(args.weights), name=args.name,
                         evaluate_splits=("val", "test") if args.test else ("val",),
                         command=recorded_command(args), flip_average=args.flip,
                         zooms=sorted(set(args.zoom)), half_weights=args.half_weights)
    from emotrace.cards import ModelCard

    card = ModelCard.read(out)
    for member in card.ensemble["members"]:
        print(f"  {member.get('run') or member['model']}: val {member['val_acc']:.2%}, "
              f"weight {member['weight']:.3f}")
    _report_built("ensemble", out, card)
    return EXIT_OK


def add_soup_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace soup``: its options, beside its body."""
    parser = sub.add_parser("soup", help="average exported networks' weights into one model",
                            description="Average the weights of exported single models fine-tuned "
                                        "from the same start (a model soup): one network, one "
                                        "network's cost. Networks from different starts average "
                                        "into noise; the card's measured accuracy shows it.")
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="exported .onnx single models (with their cards) of one backbone, "
                             "input size and head, or fast")
    _add_built_model_options(parser)
    parser.add_argument("--data", help="dataset to measure on (default: the first model's "
                                       "training data, which --repair always uses when named)")
    parser.add_argument("--repair", action="store_true",
                        help="renormalise each channel of the soup to the models' average mean and "
                             "spread on 2,048 training faces (REPAIR; recovers what averaging loses)")
    parser.set_defaults(run=soup)


def soup(args: argparse.Namespace) -> int:
    with requires_extra("train", "soup"):
        from emotrace.training.soup import build_soup
    out = build_soup(args.models, args.out, name=args.name, data=args.data,
                     evaluate_splits=("val", "test") if args.test else ("val",),
                     command=recorded_command(args), flip_average=args.flip,
                     renormalise=args.repair)
    from emotrace.cards import ModelCard

    card = ModelCard.read(out)
    for ingredient in card.soup["ingredients"]:
        accuracy = ingredient["val_acc"]
        print(f"  {ingredient['model']}: val "
              f"{'?' if accuracy is None else format(accuracy, '.2%')}")
    _report_built("soup", out, card)
    return EXIT_OK


def add_explain_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace explain``: its options, beside its body."""
    parser = sub.add_parser("explain", help="Grad-CAM heatmaps and class probabilities of faces",
                            description="Detect the faces in IMAGE and show, for each, the "
                                        "Grad-CAM heatmap of the predicted emotion (the regions "
                                        "that drove it) and the probability of every emotion.")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--save", required=True, metavar="PNG", help="figure to write")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--detector", choices=("yunet", "haar", "none"), default="yunet",
                        help="face detector; 'none' = the image is one face crop")
    parser.add_argument("--emotion", help="explain this emotion instead of the predicted one")
    parser.add_argument("--max-faces", type=int, default=6, help="largest faces shown (default: "
                                                                  "%(default)s)")
    parser.set_defaults(run=explain)


def explain(args: argparse.Namespace) -> int:
    import numpy as np

    from emotrace.data.labels import emotion_index
    from emotrace.inference import Recognizer
    from emotrace.inference.sources import read_image, to_bgr8

    with requires_extra("train", "explain"):
        from emotrace.evaluation.gradcam import GradCAM
        from emotrace.evaluation.plots import plot_explanations

    from emotrace.data.images import ImageError
    try:
        image = to_bgr8(read_image(args.image))
    except ImageError as error:  # the reader says what is wrong, the command names the file
        raise ImageError(f"{args.image}: {error}") from None
    explainer = GradCAM(args.model)
    detections, crops = Recognizer(explainer.classifier.path, detector=args.detector).face_crops(image)
    if not crops:
        raise UsageError(f"{args.image}: no face found; if the image is one face crop, use "
                         "--detector none")
    largest = sorted(range(len(crops)), key=lambda i: -detections[i].box[2] * detections[i].box[3])
    keep = sorted(largest[:args.max_faces], key=lambda i: detections[i].box[0])  # left to right
    crops = [crops[i] for i in keep]
    targets = None
    if args.emotion:
        targets = np.full(len(crops), emotion_index(args.emotion))
    result = explainer.explain(crops, targets)
    faces = explainer.classifier.preprocess(crops)[:, 0]
    out = plot_explanations(faces, result.heatmaps, result.probs, result.targets, args.save,
                            title=f"{Path(args.image).name}: {explainer.classifier.name}")
    classes = explainer.classifier.classes
    for i, (p, t) in enumerate(zip(result.probs, result.targets), 1):
        print(f"face {i}: {classes[int(p.argmax())]} {p.max():.0%} (heatmap: {classes[int(t)]})")
    print(f"wrote {out}")
    return EXIT_OK


def _key_values(pairs: list[str], option: str) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise UsageError(f"{option} expects BACKBONE=FILE, got {pair!r}")
        if not Path(value).expanduser().is_file():
            raise UsageError(f"{option} {key}: weights file not found: {value}")
        values[key] = value
    return values


def add_study_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace study``: its options, beside its body."""
    parser = sub.add_parser("study", help="run one of the papers' comparisons and write its report",
                            description="Train the study's runs (cached: finished runs are "
                                        "reused, interrupted ones resume), measure them and write "
                                        "OUT/STUDY/report.md with figures and results.json.")
    parser.add_argument("name", nargs="?", metavar="STUDY", help="study name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the studies and exit")
    parser.add_argument("--epochs", type=int, help="budget: epochs per run")
    parser.add_argument("--image-size", type=int, help="budget: input size in pixels")
    parser.add_argument("--subset", type=float, help="budget: fraction of the training split")
    parser.add_argument("--seeds", type=int, help="budget: seeds per configuration (study "
                        "default: 3; each seed is one more run of every configuration)")
    parser.add_argument("--data", help="dataset path (default: the study's, FER-2013)")
    parser.add_argument("--weights", action="append", default=[], metavar="BACKBONE=FILE",
                        help="ImageNet weights for a backbone that has none here (resnet50, "
                             "inception_v3)")
    parser.add_argument("--runs", default="runs/studies", help="where runs are cached "
                                                               "(default: %(default)s)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="train the missing runs as Ray Tune trials: no ADDRESS starts a "
                             "local Ray; 'auto' or HOST:PORT joins a cluster (the ray extra)")
    parser.add_argument("--storage", metavar="DIR",
                        help="with --ray: the runs folder every node reaches (default: --runs)")
    parser.add_argument("--out", default="experiments", help="report folder (default: %(default)s)")
    parser.set_defaults(run=study)


def study(args: argparse.Namespace) -> int:
    from emotrace.experiments import list_studies
    if args.list or not args.name:
        for name in list_studies():
            print(name)
        return EXIT_OK
    with requires_extra("train", "study"):
        from emotrace.experiments import run_study
    budget = {"epochs": args.epochs, "image_size": args.image_size, "subset": args.subset,
              "seeds": args.seeds, "data": args.data}
    if args.ray is not None:
        with requires_extra("ray", "--ray"):
            import ray  # noqa: F401
    elif args.storage:
        raise UsageError("--storage goes with --ray (locally, --runs says where runs go)")
    report = run_study(args.name, budget, _key_values(args.weights, "--weights"),
                       runs_root=args.storage or args.runs, out_root=args.out,
                       command=recorded_command(args), ray_address=args.ray)
    print(f"wrote {report}")
    return EXIT_OK


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace serve``: its options, beside its body."""
    parser = sub.add_parser("serve", help="HTTP API and web page (photos, video jobs, webcam)",
                            description="Serve the HTTP API (/docs) and the web page (/). Binds "
                                        "to localhost unless --host says otherwise.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--data-dir", default="emotrace-data", metavar="DIR",
                        help="job table and job files (default: %(default)s)")
    parser.add_argument("--token", default=os.environ.get("EMOTRACE_TOKEN"),
                        help="require 'Authorization: Bearer TOKEN' on every /v1 route "
                             "(default: $EMOTRACE_TOKEN; none: no auth)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="recognition threads (default: the cores, %(default)s)")
    parser.add_argument("--max-image-mb", type=int, default=25, help="photo upload limit (default: "
                                                                     "%(default)s)")
    parser.add_argument("--max-video-mb", type=int, default=2048,
                        help="video upload limit (default: %(default)s)")
    parser.add_argument("--max-queued", type=int, default=20,
                        help="queued video jobs before new ones get 429 (default: %(default)s)")
    parser.add_argument("--keep-days", type=float, default=7.0,
                        help="finished jobs are deleted after this many days (default: %(default)s)")
    parser.add_argument("--keep-gb", type=float, default=20.0,
                        help="and the oldest beyond this total size (default: %(default)s)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow cross-origin calls from ORIGIN (default: none)")
    parser.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    """Bind the port, lock the data folder, then start: a second server on the same port or
    folder stops with one line before it touches a job."""
    with requires_extra("serve", "serve"):
        import uvicorn

        from emotrace.server import ServerSettings, create_app
        from emotrace.server.http import uvicorn_config
    settings = ServerSettings(
        data_dir=Path(args.data_dir), model=args.model, token=args.token, host=args.host,
        workers=args.workers, max_image_bytes=args.max_image_mb * 1024 * 1024,
        max_video_bytes=args.max_video_mb * 1024 * 1024, max_queued_jobs=args.max_queued,
        retention_days=args.keep_days, retention_bytes=int(args.keep_gb * 1024 ** 3),
        cors_origins=tuple(args.cors_origin))
    sock = _bind(args.host, args.port)
    try:
        app = create_app(settings)
        app.state.store.lock.acquire()  # DataDirInUse names the process that holds it
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"emotrace serve: http://{host}:{args.port}/ (API docs at /docs; data in "
              f"{settings.data_dir}; auth {'on' if settings.token else 'off'}; Ctrl-C stops)",
              file=sys.stderr, flush=True)
        # idle connections outlive httpx's and requests' 5-s pools: the client closes first,
        # so no request is sent on a connection the server is closing
        config = uvicorn_config(app, log_level="warning", timeout_keep_alive=10)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the signal
            pass
    finally:
        sock.close()
    print("emotrace serve: stopped", file=sys.stderr)
    return EXIT_OK


def _bind(host: str, port: int):
    """A listening socket on ``host:port``, or a one-line error (the port is taken)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}; is another "
                         "server running there? Choose another --port") from None
    sock.set_inheritable(True)
    return sock

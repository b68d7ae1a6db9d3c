"""Sub-command bodies: turn parsed arguments into API calls and print the results."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import yaml

from emotrace.cards import ModelCard
from emotrace.errors import EmotraceError, UsageError, requires_extra  # noqa: F401 (API)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
        if args.debug or os.environ.get("EMOTRACE_DEBUG"):
            raise
        print(f"emotrace {args.command}: internal error: {type(error).__name__}: {error}\n"
              "This is a bug in emotrace; please report it with the command you ran. "
              "Run again with --debug (or EMOTRACE_DEBUG=1) to see the traceback.", file=sys.stderr)
        return EXIT_FAILED


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


def export(args: argparse.Namespace) -> int:
    with requires_extra("train", "export"):
        from emotrace.training import export_run
    splits = ("val", "test") if args.test else ("val",)
    out = export_run(args.run_dir, out=args.out, flip_average=args.flip, evaluate_splits=splits,
                     name=args.name, command=recorded_command(args))
    print(f"exported {out} and its card {out.with_suffix('.json')}")
    return EXIT_OK


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
    card = ModelCard.read(out)
    for member in card.ensemble["members"]:
        print(f"  {member.get('run') or member['model']}: val {member['val_acc']:.2%}, "
              f"weight {member['weight']:.3f}")
    _report_built("ensemble", out, card)
    return EXIT_OK


def soup(args: argparse.Namespace) -> int:
    with requires_extra("train", "soup"):
        from emotrace.training.soup import build_soup
    out = build_soup(args.models, args.out, name=args.name, data=args.data,
                     evaluate_splits=("val", "test") if args.test else ("val",),
                     command=recorded_command(args), flip_average=args.flip,
                     renormalise=args.repair)
    card = ModelCard.read(out)
    for ingredient in card.soup["ingredients"]:
        accuracy = ingredient["val_acc"]
        print(f"  {ingredient['model']}: val "
              f"{'?' if accuracy is None else format(accuracy, '.2%')}")
    _report_built("soup", out, card)
    return EXIT_OK


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

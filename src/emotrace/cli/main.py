"""The ``emotrace`` command: argument parsing only; every sub-command calls the Python API.

This module imports nothing heavy: Ctrl-C or SIGTERM from the first moment end the program with
one line, and the process-wide settings a command line tool wants (quiet OpenCV/FFmpeg logs) are
made here, never on ``import emotrace``.
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m`: hold Ctrl-C and SIGTERM from our first statement (the
    import os as _os        # imports below take 50 ms, and a Ctrl-C there printed a traceback);
    import signal as _signal  # main() replaces these with handlers that close outputs whole

    _signal.signal(_signal.SIGINT, lambda *_: _os._exit(130))
    _signal.signal(_signal.SIGTERM, lambda *_: _os._exit(143))

import argparse
import os
import sys
from collections.abc import Sequence

from emotrace.config import RecognizerConfig


MODEL_HELP = ("emotion model: a shipped one by name, 'fast' (default) or 'accurate' (an "
              "ensemble, slower), or an exported .onnx file")

def _run(name: str):
    """The body of a sub-command, imported only when it runs."""
    def call(args: argparse.Namespace) -> int:
        from emotrace.cli import commands, predict

        return getattr(predict if name == "predict" else commands, name)(args)
    return call


def _add_built_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that build one ONNX model from others (ensemble, soup)."""
    parser.add_argument("--out", required=True, help="ONNX file to write (card next to it)")
    parser.add_argument("--name", help="model name recorded in the card")
    parser.add_argument("--flip", action="store_true",
                        help="also average each face's mirror image (twice the compute)")
    parser.add_argument("--test", action="store_true",
                        help="also measure the test split (PrivateTest) for the card")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotrace",
        description="Facial emotion recognition: recognise emotions in faces, train and "
                    "evaluate models.",
        epilog="Run 'emotrace COMMAND --help' for the options of one command.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of internal errors (or EMOTRACE_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"emotrace {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="fine-tune a model from a preset (resumable)",
                           description="Train a model from a preset or YAML recipe. Re-running "
                                       "with the same --out resumes from its last checkpoint.")
    train.add_argument("--preset", default="mobilenetv2-fer2013-cpu",
                       help="preset name or YAML file (default: %(default)s; see --list-presets)")
    train.add_argument("--data", help="dataset path (overrides the preset's)")
    train.add_argument("--out", help="run folder (default: runs/PRESET)")
    train.add_argument("--epochs", type=int, help="override the preset's epoch count")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any recipe option, e.g. --set lr=3e-4 (YAML values)")
    train.add_argument("--no-resume", action="store_true", help="start over even if --out has a run")
    train.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    train.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    train.set_defaults(run=_run("train"))

    predict = sub.add_parser(
        "predict", help="recognise emotions in images, folders, videos, cameras, streams",
        description="Detect faces and classify their emotions. SOURCE is an image, a folder "
                    "(recursive), a glob, a video file, a camera index (0) or a stream URL. "
                    "Exit code 1 when a source could not be read.")
    predict.add_argument("sources", nargs="*", metavar="SOURCE")
    predict.add_argument("--examples", action="store_true",
                         help="add the sample photos shipped with emotrace to the sources")
    predict.add_argument("--json", action="store_true",
                         help="print one JSON line per image / frame")
    predict.add_argument("--save", metavar="DIR",
                         help="write annotated images / videos, and per-video timeline + summary")
    predict.add_argument("--csv", metavar="FILE", help="write one row per face per frame")
    predict.add_argument("--every", type=int, default=1, metavar="N",
                         help="process every N-th video frame (default: %(default)s)")
    predict.add_argument("--show", action="store_true", help="show a live window when a display exists")
    predict.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                         help="spread the work over Ray: no ADDRESS starts a local Ray for the "
                              "run; 'auto' or HOST:PORT or ray://HOST:PORT joins a cluster "
                              "(needs the ray extra; --save must be a folder every node reaches)")
    predict.add_argument("--workers", type=int, metavar="N",
                         help="with --ray: at most N image actors (and N CPUs for a local Ray)")
    RecognizerConfig.add_arguments(predict, MODEL_HELP)  # --model, --detector, --min-face, ...
    predict.set_defaults(run=_run("predict"))

    evaluate = sub.add_parser("evaluate", help="accuracy, per-class metrics, confusion matrix",
                              description="Evaluate an emotion model on a labelled dataset "
                                          "(FER-2013 folders, Kaggle CSV or class folders); "
                                          "each image is taken as a face crop.")
    evaluate.add_argument("--data", required=True, help="dataset path")
    evaluate.add_argument("--split", help="train, val (PublicTest), test (PrivateTest) or all "
                                          "(default: all)")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument("--out", metavar="DIR",
                          help="write metrics.json, confusion.json and confusion.png there")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--strict", action="store_true",
                          help="stop at the first unreadable image instead of skipping it")
    evaluate.set_defaults(run=_run("evaluate"))

    calibrate = sub.add_parser("calibrate", help="fit temperature scaling so scores mean what "
                                                 "they say",
                               description="Fit the temperature of an exported model on the "
                                           "validation split (PublicTest) and write it, with the "
                                           "expected calibration error (15 bins) before and "
                                           "after, into the model's card. Predictions then use "
                                           "the calibrated scores; the predicted class never "
                                           "changes.")
    calibrate.add_argument("model", metavar="MODEL", help="exported .onnx model (card beside it)")
    calibrate.add_argument("--data", required=True, help="dataset path (FER-2013 layout)")
    calibrate.add_argument("--test", action="store_true",
                           help="also measure the ECE on the test split (PrivateTest)")
    calibrate.set_defaults(run=_run("calibrate"))

    export = sub.add_parser("export", help="export a trained run to ONNX with its model card",
                            description="Export RUN/best.ckpt to ONNX and write the model card "
                                        "(metrics measured on the exported file).")
    export.add_argument("run_dir", metavar="RUN", help="run folder made by 'emotrace train'")
    export.add_argument("--out", help="ONNX file to write (default: RUN/model.onnx)")
    export.add_argument("--name", help="model name recorded in the card")
    export.add_argument("--flip", action="store_true",
                        help="average in the mirror image's prediction (a little more accurate, "
                             "twice the compute per face)")
    export.add_argument("--test", action="store_true",
                        help="also measure the test split (PrivateTest) for the card")
    export.set_defaults(run=_run("export"))

    curves = sub.add_parser("curves", help="learning curves and MCR/MOFR of a training run")
    curves.add_argument("run_dir", metavar="RUN", help="run folder made by 'emotrace train'")
    curves.add_argument("--out", metavar="DIR", help="where to write (default: the run folder)")
    curves.add_argument("--window", type=int, default=5, help="epochs per MCR/MOFR row")
    curves.add_argument("--json", action="store_true", help="print the statistics as JSON")
    curves.set_defaults(run=_run("curves"))

    ensemble = sub.add_parser("ensemble", help="combine trained runs into one ONNX model",
                              description="Average the probabilities of trained runs, weighted "
                                          "by the rank of their validation accuracy (w_i = "
                                          "R(A_i) / sum R(A_j)), equally, or by your weights. "
                                          "The result predicts like any model (--model).")
    ensemble.add_argument("runs", nargs="+", metavar="MEMBER",
                          help="run folders made by 'emotrace train' or 'emotrace study', or "
                               "exported .onnx models (with their cards)")
    _add_built_model_options(ensemble)
    ensemble.add_argument("--weights", default="rank", metavar="rank|equal|W,W,...",
                          help="weighting (default: %(default)s)")
    ensemble.add_argument("--zoom", type=float, action="append", default=[], metavar="Z",
                          help="also average a closer view: the central Z share of the face "
                               "(0.5 <= Z < 1, e.g. 0.92), resized back; repeat for more views")
    ensemble.add_argument("--half-weights", action="store_true",
                          help="store the weights as float16: half the file, computed in float32")
    ensemble.set_defaults(run=_run("ensemble"))

    soup = sub.add_parser("soup", help="average exported networks' weights into one model",
                          description="Average the weights of exported single models fine-tuned "
                                      "from the same start (a model soup): one network, one "
                                      "network's cost. Networks from different starts average "
                                      "into noise; the card's measured accuracy shows it.")
    soup.add_argument("models", nargs="+", metavar="MODEL",
                      help="exported .onnx single models (with their cards) of one backbone, "
                           "input size and head, or fast")
    _add_built_model_options(soup)
    soup.add_argument("--data", help="dataset to measure on (default: the first model's "
                                     "training data, which --repair always uses when named)")
    soup.add_argument("--repair", action="store_true",
                      help="renormalise each channel of the soup to the models' average mean and "
                           "spread on 2,048 training faces (REPAIR; recovers what averaging loses)")
    soup.set_defaults(run=_run("soup"))

    explain = sub.add_parser("explain", help="Grad-CAM heatmaps and class probabilities of faces",
                             description="Detect the faces in IMAGE and show, for each, the "
                                         "Grad-CAM heatmap of the predicted emotion (the regions "
                                         "that drove it) and the probability of every emotion.")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--save", required=True, metavar="PNG", help="figure to write")
    explain.add_argument("--model", help=MODEL_HELP)
    explain.add_argument("--detector", choices=("yunet", "haar", "none"), default="yunet",
                         help="face detector; 'none' = the image is one face crop")
    explain.add_argument("--emotion", help="explain this emotion instead of the predicted one")
    explain.add_argument("--max-faces", type=int, default=6, help="largest faces shown (default: "
                                                                   "%(default)s)")
    explain.set_defaults(run=_run("explain"))

    serve = sub.add_parser("serve", help="HTTP API and web page (photos, video jobs, webcam)",
                           description="Serve the HTTP API (/docs) and the web page (/). Binds "
                                       "to localhost unless --host says otherwise.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--model", help=MODEL_HELP)
    serve.add_argument("--data-dir", default="emotrace-data", metavar="DIR",
                       help="job table and job files (default: %(default)s)")
    serve.add_argument("--token", default=os.environ.get("EMOTRACE_TOKEN"),
                       help="require 'Authorization: Bearer TOKEN' on every /v1 route "
                            "(default: $EMOTRACE_TOKEN; none: no auth)")
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                       help="recognition threads (default: the cores, %(default)s)")
    serve.add_argument("--max-image-mb", type=int, default=25, help="photo upload limit (default: "
                                                                    "%(default)s)")
    serve.add_argument("--max-video-mb", type=int, default=2048,
                       help="video upload limit (default: %(default)s)")
    serve.add_argument("--max-queued", type=int, default=20,
                       help="queued video jobs before new ones get 429 (default: %(default)s)")
    serve.add_argument("--keep-days", type=float, default=7.0,
                       help="finished jobs are deleted after this many days (default: %(default)s)")
    serve.add_argument("--keep-gb", type=float, default=20.0,
                       help="and the oldest beyond this total size (default: %(default)s)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow cross-origin calls from ORIGIN (default: none)")
    serve.set_defaults(run=_run("serve"))

    study = sub.add_parser("study", help="run one of the papers' comparisons and write its report",
                           description="Train the study's runs (cached: finished runs are "
                                       "reused, interrupted ones resume), measure them and write "
                                       "OUT/STUDY/report.md with figures and results.json.")
    study.add_argument("name", nargs="?", metavar="STUDY", help="study name (see --list)")
    study.add_argument("--list", action="store_true", help="list the studies and exit")
    study.add_argument("--epochs", type=int, help="budget: epochs per run")
    study.add_argument("--image-size", type=int, help="budget: input size in pixels")
    study.add_argument("--subset", type=float, help="budget: fraction of the training split")
    study.add_argument("--seeds", type=int, help="budget: seeds per configuration (study "
                       "default: 3; each seed is one more run of every configuration)")
    study.add_argument("--data", help="dataset path (default: the study's, FER-2013)")
    study.add_argument("--weights", action="append", default=[], metavar="BACKBONE=FILE",
                       help="ImageNet weights for a backbone that has none here (resnet50, "
                            "inception_v3)")
    study.add_argument("--runs", default="runs/studies", help="where runs are cached "
                                                              "(default: %(default)s)")
    study.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="train the missing runs as Ray Tune trials: no ADDRESS starts a "
                            "local Ray; 'auto' or HOST:PORT joins a cluster (the ray extra)")
    study.add_argument("--storage", metavar="DIR",
                       help="with --ray: the runs folder every node reaches (default: --runs)")
    study.add_argument("--out", default="experiments", help="report folder (default: %(default)s)")
    study.set_defaults(run=_run("study"))
    return parser


def _version() -> str:
    from emotrace import __version__

    return __version__


def _quiet_native_logs() -> None:
    """Our messages name the failing source; OpenCV's and FFmpeg's console logs only add noise."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn interruptions and errors into one line + exit code."""
    try:
        from emotrace.utils import stop_on_signals

        stop_on_signals()  # SIGTERM stops like Ctrl-C: outputs closed whole, exit 143
        args = build_parser().parse_args(argv)
        _quiet_native_logs()
        from emotrace.cli.commands import run

        return run(args, command_line=list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as stop:  # also utils.Interrupted (Ctrl-C, SIGTERM)
        print("emotrace: interrupted", file=sys.stderr)
        return getattr(stop, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())

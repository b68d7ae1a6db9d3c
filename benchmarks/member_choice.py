"""Which members should ``accurate`` average? (PublicTest only; never the test split.)

Every candidate member (an exported emotrace ``.onnx`` with its card) classifies each PublicTest
face through the same graph ``emotrace ensemble --flip --zoom Z`` exports: the face resized to the
largest member input, the whole face and its central ``Z`` share (one view per ``--zoom``), each
also mirrored, every view resized to the member's own input. Each view's probabilities are
cached per member file, so adding a candidate or a view only costs its own pass. Prints each
member's accuracy, the ensemble of all candidates, each leave-one-out ensemble, greedy forward
selection (equal weights) and, for each ``--set`` named in advance, its accuracy and an exact
McNemar test against the ``--baseline`` set on the same faces.

    python benchmarks/member_choice.py MEMBER.onnx MEMBER.onnx ... [--zoom 0.92 [--zoom 0.84]]
        [--baseline NAME,NAME,NAME --set NAME,NAME ...]   (NAME: file stem without "emotrace-")
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

from emotrace.data import load_dataset, select_split
from emotrace.data.images import resize_face
from emotrace.errors import EmotraceError
from emotrace.evaluation.stats import mcnemar_exact, p_text
from emotrace.cards import ModelCard
from emotrace.training.ensemble import EnsembleNet, load_member
from emotrace.training.export import check_zoom, zoom_view
from emotrace.utils import atomic_path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "member_choice"


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def view_pair(path: Path, faces: torch.Tensor, zoom: float, faces_key: str) -> np.ndarray:
    """``(2, N, 7)`` probabilities of one member for one view (``zoom`` 1.0: the whole face) and
    its mirror image, cached by the file's content, the faces (``faces_key``: a digest of the
    split's images and labels), the input size and the zoom."""
    key = f"{path.stem}-{digest(path.read_bytes())}-{faces_key}-{faces.shape[-1]}-view{zoom}"
    cached = CACHE / f"{key}.npy"
    if cached.exists():
        return np.load(cached)
    member = load_member(path)
    # a one-member EnsembleNet resizes each view to the member's input as the export does
    single = EnsembleNet([member.net], [member.image_size], [1.0]).eval()
    view = faces if zoom == 1.0 else zoom_view(faces, zoom)
    with torch.no_grad():
        out = np.stack([torch.cat([single(batch).exp() for batch in v.split(256)]).numpy()
                        for v in (view, view.flip(-1))])
    CACHE.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as tmp:  # a run stopped mid-write leaves no broken cache file
        np.save(tmp, out)
    return out


def member_views(path: Path, faces: torch.Tensor, zooms: list[float],
                 faces_key: str) -> np.ndarray:
    """``(2 * (1 + len(zooms)), N, 7)``: the whole face and each zoom view, each also mirrored."""
    return np.concatenate([view_pair(path, faces, z, faces_key) for z in [1.0, *zooms]])


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probs.argmax(-1) == labels))


def greedy_selection(names: list[str], probs: dict[str, np.ndarray],
                     labels: np.ndarray) -> list[tuple[list[str], float]]:
    """Forward selection without repeats: each step adds the member that helps most."""
    chosen: list[str] = []
    steps = []
    while len(chosen) < len(names):
        best = max((n for n in names if n not in chosen),
                   key=lambda n: accuracy(np.mean([probs[m] for m in chosen + [n]], 0), labels))
        chosen = chosen + [best]
        steps.append((chosen, accuracy(np.mean([probs[m] for m in chosen], 0), labels)))
    return steps


def member_set(text: str, names: list[str]) -> list[str]:
    """``"a,b,c"`` as a list of candidate names; exits with the known names on a typo."""
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    if not chosen:
        raise SystemExit(f"--set/--baseline {text!r} names no member; candidates are "
                         f"{', '.join(names)}")
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise SystemExit(f"--set/--baseline {text!r}: unknown member(s) {', '.join(unknown)}; "
                         f"candidates are {', '.join(names)}")
    if len(set(chosen)) < len(chosen):
        raise SystemExit(f"--set/--baseline {text!r} names a member twice; an ensemble has each "
                         "member once")
    return chosen


def check_members(paths: list[Path]) -> list[str]:
    """The candidates' names (file stems without ``emotrace-``), after checking that every
    file and its card exist and that no two candidates share a name."""
    for path in paths:
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise SystemExit(f"{path}: no such model file with its card "
                             f"({path.with_suffix('.json').name}); export a run with "
                             "'emotrace export RUN --out FILE.onnx'")
    names = [path.stem.removeprefix("emotrace-") for path in paths]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SystemExit(f"two candidates share the name {', '.join(repeated)}: rename one file")
    return names


def compare_sets(baseline: list[str], sets: list[list[str]], probs: dict[str, np.ndarray],
                 labels: np.ndarray) -> None:
    """Each set's accuracy and an exact McNemar test against the baseline set."""
    base_probs = np.mean([probs[m] for m in baseline], 0)
    base = base_probs.argmax(-1)
    print(f"\nbaseline {accuracy(base_probs, labels):.2%}  {' + '.join(baseline)}")
    for chosen in sets:
        mean = np.mean([probs[m] for m in chosen], 0)
        test = mcnemar_exact(labels, mean.argmax(-1), base)
        print(f"  {accuracy(mean, labels):.2%}  {' + '.join(chosen)}\n"
              f"          vs baseline: right only here {test.only_a}, only in the baseline "
              f"{test.only_b}, {p_text(test.p_value)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"))
    parser.add_argument("--zoom", type=float, action="append",
                        help="a closer central view (repeatable; default: 0.92)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", help="comma-separated member names to compare sets against")
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="comma-separated member names chosen in advance (repeatable)")
    args = parser.parse_args()
    if args.sets and not args.baseline:
        parser.error("--set needs --baseline (the set each one is tested against)")
    torch.set_num_threads(args.threads)
    try:
        choose(args)
    except EmotraceError as error:
        raise SystemExit(str(error)) from None


def choose(args: argparse.Namespace) -> None:
    # the same views as the export, which keeps each zoom once
    zooms = sorted(set(args.zoom or [0.92]))
    for zoom in zooms:
        check_zoom(zoom)
    n_views = 2 * (1 + len(zooms))
    candidates = check_members(args.members)
    # check the named sets before the long pass over every member
    baseline = member_set(args.baseline, candidates) if args.baseline else None
    sets = [member_set(text, candidates) for text in args.sets]
    public = select_split(load_dataset(args.data, 48), "val")
    size = max(ModelCard.read(p).image_size for p in args.members)
    faces = torch.from_numpy(np.stack([resize_face(f, size) for f in public.images])
                             ).float().div(255).unsqueeze(1)
    labels = public.labels
    faces_key = digest(np.ascontiguousarray(public.images).tobytes() + labels.tobytes())
    probs = {}
    for path, name in zip(args.members, candidates):
        views = member_views(path, faces, zooms, faces_key)
        probs[name] = views.mean(0)
        print(f"{name:40s} whole {accuracy(views[0], labels):.2%}  {n_views} views "
              f"{accuracy(views.mean(0), labels):.2%}", flush=True)
    names = list(probs)
    print(f"\nall {len(names)}, {n_views} views, equal weights: "
          f"{accuracy(np.mean(list(probs.values()), 0), labels):.2%}")
    for left_out in names:
        rest = [probs[n] for n in names if n != left_out]
        print(f"  without {left_out:32s} {accuracy(np.mean(rest, 0), labels):.2%}")
    print(f"\ngreedy forward selection ({n_views} views, equal weights):")
    for chosen, acc in greedy_selection(names, probs, labels):
        print(f"  {acc:.2%}  {' + '.join(chosen)}")
    if baseline:
        compare_sets(baseline, sets, probs, labels)


if __name__ == "__main__":
    main()

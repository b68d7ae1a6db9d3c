"""Per-video summaries: each person's emotion shares, a timeline plot and a thumbnail."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from emotrace.data.labels import EMOTIONS
from emotrace.inference.results import COLORS, Result
from emotrace.utils import atomic_path, new_figure, save_figure

MAX_PLOTTED_TRACKS = 8
MIN_PLOTTED_FRAMES = 3  # shorter tracks are detector blips; they stay in the JSON summary


class VideoTimeline:
    """Accumulates a video's per-frame results, per person (``person_id``; faces without one,
    tracking off, count by their place in the frame); :meth:`summary` gives each person's
    emotion shares (fraction of their frames where each emotion is the top one) and mean
    scores; :meth:`save` writes ``<name>.summary.json``, ``<name>.timeline.png`` and one
    thumbnail per person, ``<name>.person-<id>.jpg`` (the sharpest, most frontal face seen).

    Example:
        >>> timeline = VideoTimeline("lecture.mp4")
        >>> for result in Recognizer().predict("lecture.mp4", stream=True):
        ...     timeline.add(result)
        >>> timeline.save("out", "lecture")   # summary, timeline plot, thumbnails
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.frames = 0
        self.duration = 0.0
        self.tracks: dict[int, list[tuple[float, np.ndarray]]] = defaultdict(list)
        self.thumbnails: dict[int, np.ndarray] = {}

    def add(self, result: Result) -> None:
        self.frames += 1
        self.duration = max(self.duration, result.time or 0.0)
        for number, face in enumerate(result.faces):
            key = face.person_id if face.person_id is not None else -(number + 1)
            self.tracks[key].append((result.time or 0.0,
                                     np.array([face.scores[e] for e in EMOTIONS])))
        self.thumbnails.update(result.thumbnails)

    @staticmethod
    def _describe(scores: np.ndarray) -> dict:
        shares = np.bincount(scores.argmax(axis=1), minlength=len(EMOTIONS)) / len(scores)
        means = scores.mean(axis=0)
        return {"emotion_shares": {e: round(float(s), 4) for e, s in zip(EMOTIONS, shares)},
                "mean_scores": {e: round(float(m), 4) for e, m in zip(EMOTIONS, means)},
                "dominant": EMOTIONS[int(shares.argmax())]}

    def summary(self, name: str | None = None) -> dict:
        """``{"source", "frames", "duration_s", "faces": [one entry per person, most frames
        first], "overall"}``; with ``name`` (the output stem) a person with a thumbnail has
        ``"thumbnail": "<name>.person-<id>.jpg"`` (the file :meth:`save` writes beside it)."""
        faces = []
        for person_id, samples in sorted(self.tracks.items(), key=lambda kv: -len(kv[1])):
            scores = np.stack([s for _, s in samples])
            entry = {"person_id": person_id if person_id > 0 else None,
                     "frames": len(samples), "first_time": samples[0][0],
                     "last_time": samples[-1][0], **self._describe(scores)}
            if name is not None and person_id in self.thumbnails:
                entry["thumbnail"] = self.thumbnail_name(name, person_id)
            faces.append(entry)
        everyone = [s for samples in self.tracks.values() for _, s in samples]
        overall = self._describe(np.stack(everyone)) if everyone else None
        return {"source": self.source, "frames": self.frames, "duration_s": self.duration,
                "faces": faces, "overall": overall}

    @staticmethod
    def thumbnail_name(name: str, person_id: int) -> str:
        """The file name of a person's thumbnail: ``<name>.person-<id>.jpg``."""
        return f"{name}.person-{person_id}.jpg"

    def save(self, out_dir: str | Path, name: str) -> list[Path]:
        """Write the thumbnails, ``<name>.summary.json`` and ``<name>.timeline.png`` into
        ``out_dir`` (each atomically); return their paths."""
        out_dir = Path(out_dir)
        written = []
        for person_id, image in sorted(self.thumbnails.items()):
            path = out_dir / self.thumbnail_name(name, person_id)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(encoded.tobytes())
                written.append(path)
        summary_path = out_dir / f"{name}.summary.json"
        with atomic_path(summary_path) as tmp:
            tmp.write_text(json.dumps(self.summary(name), indent=2))
        return [summary_path, self.plot(out_dir / f"{name}.timeline.png"), *written]

    def plot(self, path: str | Path) -> Path:
        """One stacked-area panel per person (the most frames first): scores over time."""
        tracks = sorted(self.tracks.items(), key=lambda kv: -len(kv[1]))
        tracks = [t for t in tracks if len(t[1]) >= min(MIN_PLOTTED_FRAMES, self.frames)]
        tracks = tracks[:MAX_PLOTTED_TRACKS]
        rows = max(1, len(tracks))
        figure = new_figure(figsize=(10, 1.5 * rows + 0.6), layout="constrained")
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
        colors = [tuple(c / 255 for c in COLORS[e][::-1]) for e in EMOTIONS]
        for ax, (person_id, samples) in zip(axes[:, 0], tracks):
            times = [t for t, _ in samples]
            scores = np.stack([s for _, s in samples]).T
            ax.stackplot(times, scores, colors=colors, labels=EMOTIONS)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"person #{person_id}" if person_id > 0 else "face", fontsize=9)
        if not tracks:
            axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center")
        axes[-1, 0].set_xlabel("time (s)")
        if tracks:
            axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        figure.suptitle(f"{Path(self.source).name}: emotion scores over time, per face")
        return save_figure(figure, path, dpi=100)

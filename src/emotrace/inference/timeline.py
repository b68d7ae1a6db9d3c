"""Per-video summaries: each tracked face's emotion shares and a timeline plot."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from emotrace.data.labels import EMOTIONS
from emotrace.inference.results import COLORS, Result
from emotrace.utils import atomic_path, new_figure, save_figure

MAX_PLOTTED_TRACKS = 8
MIN_PLOTTED_FRAMES = 3  # shorter tracks are detector blips; they stay in the JSON summary


class VideoTimeline:
    """Accumulates a video's per-frame results; :meth:`summary` gives emotion shares per face
    (fraction of its frames where each emotion is the top one) and mean scores; :meth:`save`
    writes ``<name>.summary.json`` and ``<name>.timeline.png``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.frames = 0
        self.duration = 0.0
        self.tracks: dict[int, list[tuple[float, np.ndarray]]] = defaultdict(list)

    def add(self, result: Result) -> None:
        self.frames += 1
        self.duration = max(self.duration, result.time or 0.0)
        for number, face in enumerate(result.faces):
            key = face.track_id if face.track_id is not None else -(number + 1)
            self.tracks[key].append((result.time or 0.0,
                                     np.array([face.scores[e] for e in EMOTIONS])))

    @staticmethod
    def _describe(scores: np.ndarray) -> dict:
        shares = np.bincount(scores.argmax(axis=1), minlength=len(EMOTIONS)) / len(scores)
        means = scores.mean(axis=0)
        return {"emotion_shares": {e: round(float(s), 4) for e, s in zip(EMOTIONS, shares)},
                "mean_scores": {e: round(float(m), 4) for e, m in zip(EMOTIONS, means)},
                "dominant": EMOTIONS[int(shares.argmax())]}

    def summary(self) -> dict:
        faces = []
        for track_id, samples in sorted(self.tracks.items(), key=lambda kv: -len(kv[1])):
            scores = np.stack([s for _, s in samples])
            faces.append({"track_id": track_id if track_id > 0 else None,
                          "frames": len(samples), "first_time": samples[0][0],
                          "last_time": samples[-1][0], **self._describe(scores)})
        everyone = [s for samples in self.tracks.values() for _, s in samples]
        overall = self._describe(np.stack(everyone)) if everyone else None
        return {"source": self.source, "frames": self.frames, "duration_s": self.duration,
                "faces": faces, "overall": overall}

    def save(self, out_dir: str | Path, name: str) -> list[Path]:
        out_dir = Path(out_dir)
        summary_path = out_dir / f"{name}.summary.json"
        with atomic_path(summary_path) as tmp:
            tmp.write_text(json.dumps(self.summary(), indent=2))
        return [summary_path, self.plot(out_dir / f"{name}.timeline.png")]

    def plot(self, path: str | Path) -> Path:
        """One stacked-area panel per face (the longest tracks first): scores over time."""
        tracks = sorted(self.tracks.items(), key=lambda kv: -len(kv[1]))
        tracks = [t for t in tracks if len(t[1]) >= min(MIN_PLOTTED_FRAMES, self.frames)]
        tracks = tracks[:MAX_PLOTTED_TRACKS]
        rows = max(1, len(tracks))
        figure = new_figure(figsize=(10, 1.5 * rows + 0.6), layout="constrained")
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
        colors = [tuple(c / 255 for c in COLORS[e][::-1]) for e in EMOTIONS]
        for ax, (track_id, samples) in zip(axes[:, 0], tracks):
            times = [t for t, _ in samples]
            scores = np.stack([s for _, s in samples]).T
            ax.stackplot(times, scores, colors=colors, labels=EMOTIONS)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"face #{track_id}" if track_id > 0 else "face", fontsize=9)
        if not tracks:
            axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center")
        axes[-1, 0].set_xlabel("time (s)")
        if tracks:
            axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        figure.suptitle(f"{Path(self.source).name}: emotion scores over time, per face")
        return save_figure(figure, path, dpi=100)

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
        >>> import tempfile
        >>> from emotrace import Recognizer
        >>> video = "../shared/testdata/videos/intel_face-demographics-walking-and-pause.gif"
        >>> timeline = VideoTimeline(video)
        >>> for result in Recognizer().predict(video, every=5):
        ...     timeline.add(result)
        >>> [path.name for path in timeline.save(tempfile.mkdtemp(), "walking")][:2]
        ['walking.summary.json', 'walking.timeline.png']
    """

    def __init__(self, source: str) -> None:
        """Start an empty timeline.

        Args:
            source: the video's name as the results give it (shown in the plot's title).
        """
        self.source = source
        self.frames = 0
        self.duration = 0.0
        self.tracks: dict[int, list[tuple[float, np.ndarray]]] = defaultdict(list)
        self.thumbnails: dict[int, np.ndarray] = {}

    def add(self, result: Result) -> None:
        """Count one frame's faces (and keep any new thumbnails it carries). A video face still
        waiting for its person id (``track_id`` set, ``person_id`` None) is left out.

        Args:
            result: the next frame's result.
        """
        self.frames += 1
        self.duration = max(self.duration, result.time or 0.0)
        for number, face in enumerate(result.faces):
            if face.person_id is None and face.track_id is not None:
                continue  # a new face waiting to be seen well enough to know who it is
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
        ``"thumbnail": "<name>.person-<id>.jpg"`` (the file :meth:`save` writes beside it).

        Args:
            name: the output stem, or ``None`` to leave thumbnails out.

        Returns:
            The summary; each person's entry has ``person_id``, ``frames``, ``first_time``,
            ``last_time``, ``emotion_shares``, ``mean_scores`` and ``dominant``.

        Example:
            >>> from emotrace.inference.results import Face
            >>> timeline = VideoTimeline("clip.mp4")
            >>> for frame, emotion in enumerate(["happy", "happy", "sad"]):
            ...     face = Face((0, 0, 48, 48), emotion, {e: float(e == emotion) for e in EMOTIONS},
            ...                 person_id=1)
            ...     timeline.add(Result("clip.mp4", [face], frame=frame, time=frame / 30))
            >>> summary = timeline.summary()
            >>> summary["frames"], summary["faces"][0]["dominant"], summary["faces"][0]["emotion_shares"]["sad"]
            (3, 'happy', 0.3333)
        """
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
        """The file name of a person's thumbnail: ``<name>.person-<id>.jpg``.

        Args:
            name: the output stem.
            person_id: the person.

        Returns:
            The file name (no folder).

        Example:
            >>> VideoTimeline.thumbnail_name("lecture", 3)
            'lecture.person-3.jpg'
        """
        return f"{name}.person-{person_id}.jpg"

    def save(self, out_dir: str | Path, name: str) -> list[Path]:
        """Write the thumbnails, ``<name>.summary.json`` and ``<name>.timeline.png`` into
        ``out_dir`` (each atomically); return their paths.

        Args:
            out_dir: an existing folder.
            name: the output stem (usually the video's file name).

        Returns:
            The summary, the timeline plot, then the thumbnails.
        """
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
        """One stacked-area panel per person (the most frames first): scores over time.

        At most 8 panels; people seen in fewer than 3 frames are left out of the plot (they
        stay in the summary).

        Args:
            path: the PNG to write (atomically).

        Returns:
            The written file.
        """
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

"""Face ids across video frames: motpy's Kalman/IoU multi-object tracker (short-term motion
tracks; :mod:`emotrace.inference.identity` turns them into one id per person), plus per-track score
smoothing. (Supervision's ByteTrack needs the non-headless OpenCV wheel, so it is not used.)"""

from __future__ import annotations

import functools

import numpy as np

from emotrace.errors import ConfigError


@functools.cache
def _recording_matcher() -> type:
    """motpy's matcher, remembering which tracker took which detection in the last step. motpy is
    imported here, when a video is tracked: it pulls filterpy and scipy.stats, 0.8 s of the 2 s
    that ``import emotrace.inference`` took, paid by every photo-only CLI run."""
    from motpy.tracker import IOUAndFeatureMatchingFunction

    class RecordingMatcher(IOUAndFeatureMatchingFunction):
        def __call__(self, trackers, detections):
            matches = super().__call__(trackers, detections)
            self.last = {int(det): trackers[int(track)] for track, det in matches}
            return matches

    return RecordingMatcher


class FaceTracker:
    """Gives each face box a small integer id that stays with the person across frames.

    ``max_staleness``: frames a lost face is kept before its id is retired.

    Args:
        fps: frame rate of the video (the motion model's time step).
        min_iou: the smallest overlap between a track's predicted box and a detection that
            continues the track.
        max_staleness: frames a lost face is kept before its id is retired.

    Example:
        >>> tracker = FaceTracker(fps=30)
        >>> tracker.update([(10, 10, 50, 50), (200, 10, 50, 50)])
        [1, 2]
        >>> tracker.update([(202, 11, 50, 50), (12, 10, 50, 50)])
        [2, 1]
    """

    def __init__(self, fps: float = 30.0, min_iou: float = 0.2, max_staleness: int = 15) -> None:
        self.fps, self.min_iou, self.max_staleness = fps, min_iou, max_staleness
        self._ids: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """End every track (after a cut, positions say nothing about who is who); new tracks
        get new ids.

        Example:
            >>> tracker = FaceTracker()
            >>> tracker.update([(10, 10, 50, 50)])
            [1]
            >>> tracker.reset()
            >>> tracker.update([(10, 10, 50, 50)])
            [2]
        """
        from motpy import MultiObjectTracker

        self.matcher = _recording_matcher()(min_iou=self.min_iou)
        self.tracker = MultiObjectTracker(
            dt=1.0 / max(self.fps, 1.0), matching_fn=self.matcher,
            model_spec={"order_pos": 1, "dim_pos": 2, "order_size": 0, "dim_size": 2,
                        "q_var_pos": 5000.0, "r_var_pos": 0.1},
            tracker_kwargs={"max_staleness": self.max_staleness})
        self._seen: list = []  # the motpy trackers of the last update's faces

    def update(self, boxes: list[tuple[int, int, int, int]]) -> list[int]:
        """Ids for this frame's boxes ``(x, y, w, h)``, in the same order.

        Args:
            boxes: this frame's face boxes.

        Returns:
            One id per box: a known track's id, or a new one.
        """
        from motpy import Detection

        detections = [Detection(box=np.array([x, y, x + w, y + h], float), score=1.0)
                      for x, y, w, h in boxes]
        known = {id(t) for t in self.tracker.trackers}
        self.matcher.last = {}
        self.tracker.step(detections)
        new = [t for t in self.tracker.trackers if id(t) not in known]
        ids, seen = [], []
        for index, detection in enumerate(detections):
            tracker = self.matcher.last.get(index)
            if tracker is None:  # a new track starts exactly at its detection's box
                tracker = next(t for t in new if np.allclose(t.box(), detection.box))
                new.remove(tracker)
            ids.append(self._ids.setdefault(tracker.id, len(self._ids) + 1))
            seen.append(tracker)
        self._seen = seen
        return ids

    def predict(self) -> list[tuple[int, np.ndarray]]:
        """Advance every track one frame without detections (a frame where detection is
        skipped) and return ``(id, [x1, y1, x2, y2])`` of the faces seen at the last detection,
        where the motion model puts them now.

        Returns:
            ``(id, [x1, y1, x2, y2])`` for each face of the last update.

        Example:
            >>> tracker = FaceTracker()
            >>> _ = tracker.update([(10, 10, 50, 50)])
            >>> [track_id for track_id, _ in tracker.predict()]
            [1]
        """
        for tracker in self.tracker.trackers:
            tracker.predict()
        return [(self._ids[t.id], t.box()) for t in self._seen]


class ScoreSmoother:
    """Exponential moving average of each track's scores: ``s = a * s_prev + (1 - a) * s_new``.

    Args:
        alpha: weight of the past, in [0, 1); 0 turns smoothing off.

    Raises:
        ConfigError: ``alpha`` outside [0, 1).

    Example:
        >>> smooth = ScoreSmoother(0.5)
        >>> smooth(1, np.array([1.0, 0.0])).tolist(), smooth(1, np.array([0.0, 1.0])).tolist()
        ([1.0, 0.0], [0.5, 0.5])
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self.state: dict[int, np.ndarray] = {}

    def __call__(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """Smooth one track's scores with its past ones.

        Args:
            track_id: the track (or person) the scores belong to.
            probs: this frame's scores.

        Returns:
            The smoothed scores (``probs`` itself on the track's first frame).
        """
        previous = self.state.get(track_id)
        smoothed = probs if previous is None else self.alpha * previous + (1 - self.alpha) * probs
        self.state[track_id] = smoothed
        return smoothed

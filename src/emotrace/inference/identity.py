"""One person, one id, for a whole video: SFace face embeddings matched to a per-video gallery.

Motion tracks (:mod:`emotrace.inference.tracking`) keep an id only while a box moves smoothly;
a face that is lost (hidden, looking down, out of the frame) or comes back after a cut starts a
new track. :class:`PersonGallery` gives each new track the id of the known person it looks like
(cosine similarity of SFace embeddings of the aligned face, above a threshold chosen on
``benchmarks/identity.py``), or a new person id. Embeddings cost about 40-50 ms of CPU a face,
so a face is embedded only when its track is born, plus one face (the one embedded longest
ago) every ``refresh_every`` frames, never every face every frame.

A new face that is not yet seen well enough to tell who it is (half hidden, entering at the
frame's border, still coming out from behind something) while someone known is out of view
waits a few frames with no person id (``None``) rather than get an id of its own that a later,
better look would take back (``WAIT_FRAMES``). A face seen well that is still unlike anyone
can only be looked at again later (``RECHECK_AFTER``): if it then is someone known, the short-
lived id it had is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from emotrace.errors import ConfigError, NotFoundError
from emotrace.inference.detectors import Detection, YuNetDetector

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: Cosine similarity above which two aligned faces are the same person. Chosen with
#: ``benchmarks/identity.py`` on 405 photos of 135 LFW people of the dev set: different people
#: pass 0.026% of pairs (0.2% at OpenCV's usual 0.363), photos of one person taken on different
#: days 94% (98%); the clips, where a person looks alike within one video, keep every id.
DEFAULT_MATCH_THRESHOLD = 0.42
#: Below the threshold a match is still taken when it is clear: at least ``LOW_THRESHOLD`` and
#: ``MARGIN`` ahead of the runner-up (the face's next-best person, the person's next-best new
#: face). Faces of one video come back with different looks (after a cut, small, turned), and a
#: lone best candidate is rarely a stranger: see the threshold table of ``benchmarks/identity.py``
#: (returning members found, newcomers merged, in galleries of 10 and 30).
LOW_THRESHOLD = 0.35
MARGIN = 0.15
#: One visible face is re-embedded every this many frames (the one embedded longest ago, among
#: faces worth embedding): new views for the gallery, a better thumbnail. 300 frames (10 s at
#: 30 fps) cost about 0.15 ms a frame (an embedding: 40-50 ms of CPU), about 1% of a VGA frame
#: with detection every 2nd frame (``benchmarks/classroom.py --identity-cost``: 11-17 ms);
#: every 150 frames cost twice that, for the same ids and IDF1 on the hardest and small-faces
#: clips of ``benchmarks/identity.py``.
DEFAULT_REFRESH_EVERY = 300
MAX_EMBEDDINGS = 8  # per person: the first view and the latest ones
#: A track that started a new person while others were known is looked at again this many
#: frames after its birth: a face born half hidden or turned away embeds poorly, and the second
#: look may find that it is someone known after all (the track then takes that person's id).
RECHECK_AFTER = (10, 30)
#: ...only when someone known not in view resembled it at least this much at its birth (a
#: stranger to everyone is not embedded again: in a crowd each recheck costs a frame's worth).
RECHECK_FROM = 0.15
#: A face is worth embedding when YuNet scores it at least this (its detection threshold is
#: 0.6) and its box does not touch the frame's border. A face half hidden by an occluder, or
#: entering at the border, scores 0.6-0.7 and embeds poorly: on the hardest clip of
#: ``benchmarks/identity.py`` a face coming out from behind an occluder scored 0.68 and
#: resembled its own person 0.22 (0.55 one frame later, scored 0.83), so it became a new
#: person until a recheck found it ten frames later: an id that should never have existed.
GOOD_SCORE = 0.8
#: A new track whose face is not yet worth embedding, while someone known is out of view whom
#: it could be, waits (no person id) while its face is still improving (coming out from behind
#: something: a half-visible face can score 0.82 already), at most this many frames (a third
#: of a second); a small face that always scores low is taken as it is a frame later.
WAIT_FRAMES = 10
#: A waiting face is improving while its score rises at least this much from one detection to
#: the next, or its box widens by this share.
RISING = 0.02
GROWING = 0.05
EDGE = 2  # pixels: a box this close to the frame's border is cut off by it
#: Tracks unseen for this many frames are dropped (the tracker retires them far sooner).
FORGET_TRACK_AFTER = 600
THUMBNAIL_MARGIN = 0.25  # of the face box, on each side
#: Before embedding, a face's landmarks are found again at full resolution on a crop scaled so
#: the face is this wide: the frame's detection may run on a half-size copy, and on faces of
#: 50-60 px its landmarks are off by enough to drop the similarity of one person's two photos
#: from 0.44-0.70 to 0.27-0.38 (measured on the small-faces clip of benchmarks/identity.py).
REFINE_SIDE = 120
REFINE_MARGIN = 0.6  # of the face box, on each side of the crop


class FaceEmbedder:
    """SFace (OpenCV Zoo, shipped in the package): 128-d embeddings of faces aligned with the
    detector's five landmarks.

    Example:
        >>> from emotrace import sample_photos
        >>> image = cv2.imread(str(sample_photos()[0]))
        >>> detections = YuNetDetector().detect(image)
        >>> vector, aligned = FaceEmbedder().embed(image, detections[0])  # None: no landmarks
        >>> vector.shape, aligned.shape
        ((128,), (112, 112, 3))
    """

    def __init__(self, model: str | Path | None = None) -> None:
        path = Path(model) if model else Path(str(resources.files("emotrace") / "assets"
                                                  / SFACE_FILE))
        if not path.is_file():
            raise NotFoundError(f"SFace model not found: {path}; reinstall emotrace")
        self.model = cv2.FaceRecognizerSF.create(str(path), "")
        self.landmarks = YuNetDetector(min_face=0)  # full resolution

    def embed(self, image: np.ndarray,
              detection: Detection) -> tuple[np.ndarray, np.ndarray] | None:
        """The unit-length embedding of one face and its 112x112 aligned crop, or None when
        the detection has no landmarks (Haar detector) to align it with."""
        if detection.landmarks is None:
            return None
        crop, row = self._refined(image, detection)
        aligned = self.model.alignCrop(crop, row)
        vector = self.model.feature(aligned).ravel().astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12), aligned


    def _refined(self, image: np.ndarray,
                 detection: Detection) -> tuple[np.ndarray, np.ndarray]:
        """A crop around the face scaled to ``REFINE_SIDE`` and the face's YuNet row in it
        (box, 5 landmarks, score), detected again there; the given landmarks when YuNet does
        not find the face again."""
        x, y, w, h = detection.box
        side = max(w, h, 1)
        scale = REFINE_SIDE / side
        height, width = image.shape[:2]
        x0, y0 = max(0, round(x - REFINE_MARGIN * side)), max(0, round(y - REFINE_MARGIN * side))
        x1 = min(width, round(x + w + REFINE_MARGIN * side))
        y1 = min(height, round(y + h + REFINE_MARGIN * side))
        crop = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        expected = ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)
        found = [(d, _iou(expected, d.box)) for d in self.landmarks.detect(crop)]
        best = max(found, key=lambda pair: pair[1], default=(None, 0.0))
        if best[0] is not None and best[1] >= 0.4:
            box, landmarks = best[0].box, best[0].landmarks
        else:
            box = expected
            landmarks = (np.asarray(detection.landmarks, np.float32) - (x0, y0)) * scale
        row = np.concatenate([np.asarray(box, np.float32),
                              np.asarray(landmarks, np.float32).ravel(), [1.0]])
        return crop, row.astype(np.float32)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


def face_quality(aligned: np.ndarray, landmarks: np.ndarray) -> float:
    """How good a thumbnail a face makes: sharpness (variance of the Laplacian of the aligned
    crop) times frontality (1 when the nose sits midway between the eyes, 0 at profile)."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    (rx, _), (lx, _), (nx, _) = landmarks[0], landmarks[1], landmarks[2]
    eye_span = abs(lx - rx)
    frontal = 0.0 if eye_span < 1e-6 else max(0.0, 1.0 - 2.0 * abs(nx - (lx + rx) / 2) / eye_span)
    return sharpness * frontal


def thumbnail_crop(image: np.ndarray, box: tuple[int, int, int, int],
                   side: int = 160) -> np.ndarray:
    """The face box with a margin, at most ``side`` px on its longer side (a copy)."""
    x, y, w, h = box
    mx, my = round(w * THUMBNAIL_MARGIN), round(h * THUMBNAIL_MARGIN)
    height, width = image.shape[:2]
    crop = image[max(0, y - my):min(height, y + h + my), max(0, x - mx):min(width, x + w + mx)]
    scale = side / max(crop.shape[:2])
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return crop.copy()


def is_match(similarity: float, runner_up: float, threshold: float = DEFAULT_MATCH_THRESHOLD,
             low: float = LOW_THRESHOLD, margin: float = MARGIN) -> bool:
    """Whether a face is the person it is most similar to: ``similarity`` at least
    ``threshold``, or at least ``low`` and ``margin`` ahead of ``runner_up`` (the best other
    candidate's similarity; -1 when there is none)."""
    return similarity >= threshold or (similarity >= low and similarity - runner_up >= margin)


@dataclass
class Person:
    """A person of one video: id, embeddings (first view + latest), best thumbnail."""

    id: int
    embeddings: list[np.ndarray] = field(default_factory=list)
    thumbnail: np.ndarray | None = None
    quality: float = -1.0

    def similarity(self, vector: np.ndarray) -> float:
        """Cosine similarity of ``vector`` to this person's closest stored view (-1 if none)."""
        return max((float(e @ vector) for e in self.embeddings), default=-1.0)

    def remember(self, vector: np.ndarray) -> None:
        self.embeddings.append(vector)
        if len(self.embeddings) > MAX_EMBEDDINGS:
            del self.embeddings[1]  # keep the first view: it anchors the person


@dataclass
class _Track:
    person: int
    embedded_at: int  # frame of the track's last embedding (-1: none)
    seen_at: int = 0  # frame where the track was last visible
    born_at: int = 0
    rechecks: list[int] = field(default_factory=list)  # frames still to look again at


@dataclass
class _Waiting:
    """A new track whose face is not yet worth embedding (see ``WAIT_FRAMES``)."""

    since: int  # frame of its first detection
    score: float  # its latest detection score
    width: int  # and box width
    seen_at: int


def worth_embedding(detection: Detection, shape: tuple[int, ...]) -> bool:
    """Whether a face is seen well enough to tell who it is: landmarks, a detection score of
    at least ``GOOD_SCORE`` (or none given), and a box clear of the frame's border."""
    if detection.landmarks is None:
        return False
    x, y, w, h = detection.box
    inside = x >= EDGE and y >= EDGE and x + w <= shape[1] - EDGE and y + h <= shape[0] - EDGE
    return inside and (detection.score is None or detection.score >= GOOD_SCORE)


class PersonGallery:
    """Person ids for the motion tracks of one video (see the module docstring).

    Two faces of one frame never share a person id: a new track is matched only to people not
    visible in that frame, one track per person (an optimal assignment). A track whose face
    has no landmarks cannot be embedded: it gets a new person id (tracking only).

    ``embed``: a face's embedding and aligned crop (:meth:`FaceEmbedder.embed`).

    Example:
        >>> from emotrace import sample_photos
        >>> image = cv2.imread(str(sample_photos()[0]))
        >>> detections = YuNetDetector().detect(image)
        >>> gallery = PersonGallery(FaceEmbedder().embed)
        >>> gallery.update(image, detections, track_ids=[0, 1, 2, 3], frame=0)
        [1, 2, 3, 4]
    """

    def __init__(self, embed: Callable[[np.ndarray, Detection],
                                       tuple[np.ndarray, np.ndarray] | None],
                 threshold: float = DEFAULT_MATCH_THRESHOLD,
                 refresh_every: int = DEFAULT_REFRESH_EVERY) -> None:
        if not -1.0 < threshold < 1.0:
            raise ConfigError(f"match threshold must be between -1 and 1, got {threshold}")
        if refresh_every < 1:
            raise ConfigError(f"refresh_every must be >= 1, got {refresh_every}")
        self.embed, self.threshold, self.refresh_every = embed, threshold, refresh_every
        self.people: dict[int, Person] = {}
        self.tracks: dict[int, _Track] = {}
        self.waiting: dict[int, _Waiting] = {}
        self._new_shot = True  # the next update is a shot's first frame
        self.embeddings = 0  # embeddings computed (cost accounting)
        self._next_id = 1
        self._next_refresh = refresh_every
        self.improved: set[int] = set()  # people whose thumbnail got better in the last update

    def person_of(self, track_id: int) -> int | None:
        """The person id of a known track (None for a track never seen or still waiting)."""
        track = self.tracks.get(track_id)
        return None if track is None else track.person

    def forget_tracks(self) -> None:
        """After a cut: every track ended; the people stay in the gallery."""
        self.tracks.clear()
        self.waiting.clear()
        self._new_shot = True

    def update(self, image: np.ndarray, detections: list[Detection], track_ids: list[int],
               frame: int) -> list[int | None]:
        """The person id of each face of a frame where faces were detected (same order).

        Args:
            image: the BGR frame.
            detections: its faces (landmarks needed for embedding).
            track_ids: their motion-track ids.
            frame: the frame's index (schedules the periodic refresh).
        Returns:
            one person id per face; None for a new face still waiting to be seen well enough
            to tell who it is (see ``WAIT_FRAMES``).
        """
        self.improved = set()
        taken = {self.tracks[t].person for t in track_ids if t in self.tracks}
        born = self._ready(image, detections, track_ids, taken, frame)
        self._new_shot = False
        views: dict[int, tuple[np.ndarray, float]] = {}
        for index in born:
            embedded = self._embed(image, detections[index])
            if embedded is not None:
                views[index] = embedded
        self._match(born, {i: v for i, (v, _) in views.items()}, track_ids, taken, frame)
        for index, (vector, quality) in views.items():
            self._keep_view(self.tracks[track_ids[index]].person, vector, quality, image,
                            detections[index].box)
        self._recheck(image, detections, track_ids, frame, set(born))
        if frame >= self._next_refresh:
            self._refresh(image, detections, track_ids, frame, set(born))
        for track_id in track_ids:
            (self.tracks.get(track_id) or self.waiting[track_id]).seen_at = frame
        if frame % FORGET_TRACK_AFTER == 0:
            self.tracks = {t: s for t, s in self.tracks.items()
                           if s.seen_at >= frame - FORGET_TRACK_AFTER}
            self.waiting = {t: s for t, s in self.waiting.items()
                            if s.seen_at >= frame - FORGET_TRACK_AFTER}
        return [self.person_of(t) for t in track_ids]

    # -- steps ---------------------------------------------------------------------------------
    def _ready(self, image: np.ndarray, detections: list[Detection], track_ids: list[int],
               taken: set[int], frame: int) -> list[int]:
        """The new tracks of this frame to give a person now (indices); the others wait.

        A new face waits only while someone known is out of view (whom it could be: with
        nobody to find, the face can only be a new person). In a shot's first frame, faces
        worth embedding are taken at once; any other new face (one that appears during a shot
        is often coming out from behind something, or turning back) waits for its next
        detection, and then as long as it improves, for at most ``WAIT_FRAMES``."""
        someone_away = any(p.id not in taken and p.embeddings for p in self.people.values())
        ready = []
        for index, track_id in enumerate(track_ids):
            if track_id in self.tracks:
                continue
            detection = detections[index]
            score = -1.0 if detection.score is None else float(detection.score)
            waiting = self.waiting.get(track_id)
            width = detection.box[2]
            if waiting is not None:
                improving = (score >= waiting.score + RISING
                             or width >= (1 + GROWING) * waiting.width)
                go = frame - waiting.since >= WAIT_FRAMES or not improving
                waiting.score, waiting.width = score, width
            elif (not someone_away or detection.landmarks is None
                  or (self._new_shot and worth_embedding(detection, image.shape))):
                go = True
            else:
                self.waiting[track_id] = _Waiting(frame, score, width, frame)
                go = False
            if go:
                self.waiting.pop(track_id, None)
                ready.append(index)
        return ready

    def _embed(self, image: np.ndarray, detection: Detection) -> tuple[np.ndarray, float] | None:
        """The face's embedding and its quality as a thumbnail (None: no landmarks)."""
        embedded = self.embed(image, detection)
        if embedded is None:
            return None
        self.embeddings += 1
        vector, aligned = embedded
        return vector, face_quality(aligned, np.asarray(detection.landmarks))

    def _match(self, born: list[int], vectors: dict[int, np.ndarray], track_ids: list[int],
               taken: set[int], frame: int) -> None:
        """Give each new track a person: the best free known person above the threshold (one
        track per person), else a new one."""
        free = [p for p in self.people.values() if p.id not in taken and p.embeddings]
        rows = [i for i in born if i in vectors]
        chosen: dict[int, int] = {}
        best = {i: max((p.similarity(vectors[i]) for p in free), default=-1.0) for i in rows}
        if rows and free:
            similarity = np.array([[p.similarity(vectors[i]) for p in free] for i in rows])
            from scipy.optimize import linear_sum_assignment  # 0.5 s to import: only when needed

            for r, c in zip(*linear_sum_assignment(-similarity)):
                others = np.concatenate([np.delete(similarity[r], c),
                                         np.delete(similarity[:, c], r), [-1.0]])
                if is_match(similarity[r, c], others.max(), self.threshold):
                    chosen[rows[r]] = free[c].id
        for index in born:
            person = chosen.get(index)
            doubtful = person is None and best.get(index, -1.0) >= RECHECK_FROM
            if person is None:
                person = self._new_person()
            else:
                self._take(person)
            self.tracks[track_ids[index]] = _Track(
                person, frame if index in vectors else -1, frame, frame,
                [frame + after for after in RECHECK_AFTER] if doubtful else [])

    def _new_person(self) -> int:
        person, self._next_id = self._next_id, self._next_id + 1
        self.people[person] = Person(person)
        return person

    def _take(self, person: int) -> None:
        """A lost track still holding ``person`` lets go (it is someone else now)."""
        for other in [t for t, s in self.tracks.items() if s.person == person]:
            del self.tracks[other]

    def _recheck(self, image: np.ndarray, detections: list[Detection], track_ids: list[int],
                 frame: int, born: set[int]) -> None:
        """Look again at tracks that started a new person (see ``RECHECK_AFTER``): when the
        face now clearly is a known person not in view, the track takes that person's id."""
        visible = {self.tracks[t].person for t in track_ids if t in self.tracks}
        for index, track_id in enumerate(track_ids):
            track = self.tracks.get(track_id)
            if (track is None or index in born or not track.rechecks or frame < track.rechecks[0]
                    or detections[index].landmarks is None):
                continue
            while track.rechecks and frame >= track.rechecks[0]:
                track.rechecks.pop(0)
            embedded = self._embed(image, detections[index])
            if embedded is None:
                continue
            vector, quality = embedded
            free = [p for p in self.people.values()
                    if p.id not in visible and p.id != track.person and p.embeddings]
            scores = sorted(((p.similarity(vector), p.id) for p in free), reverse=True)
            if scores and is_match(scores[0][0], scores[1][0] if len(scores) > 1 else -1.0,
                                   self.threshold):
                old, track.person = track.person, scores[0][1]
                track.rechecks = []
                self._take(track.person)
                self.tracks[track_id] = track
                if not any(s.person == old for s in self.tracks.values()):
                    del self.people[old]  # a person seen for a few frames only
                visible = (visible - {old}) | {track.person}
            track.embedded_at = frame
            self._keep_view(track.person, vector, quality, image, detections[index].box)

    def _keep_view(self, person_id: int, vector: np.ndarray, quality: float, image: np.ndarray,
                   box: tuple[int, int, int, int]) -> None:
        person = self.people[person_id]
        person.remember(vector)
        if quality > person.quality:
            person.quality = quality
            person.thumbnail = thumbnail_crop(image, box)
            self.improved.add(person_id)

    def _refresh(self, image: np.ndarray, detections: list[Detection], track_ids: list[int],
                 frame: int, born: set[int]) -> None:
        """Re-embed the visible face embedded longest ago: a new view of its person, or, when it
        clearly is another (free) known person, that person's id from now on."""
        candidates = [i for i in range(len(track_ids)) if i not in born
                      and track_ids[i] in self.tracks
                      and worth_embedding(detections[i], image.shape)]
        if not candidates:
            return
        self._next_refresh = frame + self.refresh_every
        index = min(candidates, key=lambda i: self.tracks[track_ids[i]].embedded_at)
        track = self.tracks[track_ids[index]]
        embedded = self._embed(image, detections[index])
        if embedded is None:
            return
        vector, quality = embedded
        track.embedded_at = frame
        own = self.people[track.person]
        if own.embeddings and own.similarity(vector) < self.threshold:
            visible = {self.tracks[t].person for t in track_ids if t in self.tracks}
            best = max((p for p in self.people.values() if p.id not in visible and p.embeddings),
                       key=lambda p: p.similarity(vector), default=None)
            if best is not None and best.similarity(vector) >= self.threshold:
                track.person = best.id
                own = best
            else:
                return  # an unusual view (looking down...): not a view to learn from
        self._keep_view(own.id, vector, quality, image, detections[index].box)

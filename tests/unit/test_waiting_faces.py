"""A new face that waits to be seen well has a track but no person yet (issue 26): it is left
out of the per-person summary and drawn without a number, never as a stray person."""

from __future__ import annotations

import numpy as np

from emotrace.data.labels import EMOTIONS
from emotrace.inference.results import Face, Result
from emotrace.inference.timeline import VideoTimeline


def _face(person: int | None, track: int | None) -> Face:
    scores = {e: (0.7 if e == "happy" else 0.05) for e in EMOTIONS}
    return Face(box=(20, 20, 60, 60), emotion="happy", scores=scores, score=0.9,
                track_id=track, person_id=person)


def test_a_waiting_face_is_not_a_person_in_the_summary():
    timeline = VideoTimeline("clip.mp4")
    for index in range(4):  # person 1 throughout; track 9 waits for 2 frames, then is person 2
        faces = [_face(1, 1), _face(None if index < 2 else 2, 9)]
        timeline.add(Result("clip.mp4", faces, frame=index, time=index / 10))
    people = {entry["person_id"]: entry["frames"] for entry in timeline.summary()["faces"]}
    assert people == {1: 4, 2: 2}


def test_faces_without_tracking_still_count_by_position():
    timeline = VideoTimeline("clip.mp4")
    timeline.add(Result("clip.mp4", [_face(None, None)], frame=0, time=0.0))
    assert [entry["person_id"] for entry in timeline.summary()["faces"]] == [None]


def test_a_waiting_face_is_drawn_without_a_number():
    image = np.zeros((120, 120, 3), np.uint8)
    waiting = Result("a.jpg", [_face(None, 9)], image=image).draw()
    known = Result("a.jpg", [_face(9, 9)], image=image).draw()
    # the label box is as wide as its text: "#9 happy 70%" is wider than "happy 70%"
    assert (known[:20].any(axis=2).sum(axis=0) > 0).sum() > (
        waiting[:20].any(axis=2).sum(axis=0) > 0).sum()

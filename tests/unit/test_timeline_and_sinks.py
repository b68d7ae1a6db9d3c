"""Video summaries and result sinks on synthetic frames: the numbers of a summary by hand, and
sinks that never leave a half-written file under a final name."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotrace.data.labels import EMOTIONS
from emotrace.errors import OutputError
from emotrace.inference.results import Face, Result
from emotrace.inference.sinks import CSV_FIELDS, AnnotatedSink, CsvSink, JsonLinesSink
from emotrace.inference.sources import SourceInfo
from emotrace.inference.timeline import VideoTimeline


def _scores(top: str, p: float = 0.7) -> dict[str, float]:
    rest = (1 - p) / 6
    return {e: (p if e == top else rest) for e in EMOTIONS}


def _face(top: str, box=(20, 20, 40, 40), person=None, track=None) -> Face:
    return Face(box=box, emotion=top, scores=_scores(top), score=0.9, track_id=track,
                person_id=person)


def _frame(index: int, faces, source="clip.mp4", image=True) -> Result:
    picture = np.full((120, 160, 3), 40 + index, np.uint8) if image else None
    return Result(source, faces, frame=index, time=index / 10, image=picture)


def partials(folder: Path) -> list[Path]:
    return list(folder.rglob(".*partial*"))


def test_summary_shares_and_order_by_hand():
    timeline = VideoTimeline("clip.mp4")
    # person 7: happy, happy, sad, happy (4 frames); person 2: angry twice (frames 1, 2)
    plan = [[("happy", 7)], [("happy", 7), ("angry", 2)], [("sad", 7), ("angry", 2)],
            [("happy", 7)]]
    for index, faces in enumerate(plan):
        timeline.add(_frame(index, [_face(top, person=p) for top, p in faces]))
    summary = timeline.summary()
    assert summary["frames"] == 4 and summary["duration_s"] == pytest.approx(0.3)
    first, second = summary["faces"]
    assert (first["person_id"], first["frames"], second["person_id"], second["frames"]) == (7, 4, 2, 2)
    assert first["emotion_shares"]["happy"] == 0.75 and first["emotion_shares"]["sad"] == 0.25
    assert first["dominant"] == "happy" and second["dominant"] == "angry"
    assert (second["first_time"], second["last_time"]) == (0.1, 0.2)
    assert first["mean_scores"]["happy"] == pytest.approx(round((0.7 * 3 + 0.05) / 4, 4))
    assert summary["overall"]["emotion_shares"]["angry"] == pytest.approx(2 / 6, abs=1e-4)
    assert sum(summary["overall"]["emotion_shares"].values()) == pytest.approx(1.0, abs=1e-3)


def test_faces_without_a_person_count_by_their_place_and_empty_videos_have_no_overall():
    timeline = VideoTimeline("x.mp4")
    timeline.add(_frame(0, [_face("fear"), _face("sad")]))
    timeline.add(_frame(1, [_face("fear")]))
    faces = timeline.summary()["faces"]
    assert [(f["person_id"], f["frames"], f["dominant"]) for f in faces] == [
        (None, 2, "fear"), (None, 1, "sad")]
    empty = VideoTimeline("none.mp4").summary()
    assert empty["faces"] == [] and empty["overall"] is None and empty["frames"] == 0


def test_timeline_save_writes_summary_plot_and_thumbnails_atomically(tmp_path):
    timeline = VideoTimeline("talk.mp4")
    for index in range(3):
        result = _frame(index, [_face("surprise", person=4)])
        if index == 1:
            result.thumbnails = {4: np.full((30, 30, 3), 90, np.uint8)}
        timeline.add(result)
    written = timeline.save(tmp_path, "talk")
    names = sorted(p.name for p in written)
    assert names == ["talk.person-4.jpg", "talk.summary.json", "talk.timeline.png"]
    summary = json.loads((tmp_path / "talk.summary.json").read_text())
    assert summary["faces"][0]["thumbnail"] == "talk.person-4.jpg"
    assert cv2.imread(str(tmp_path / "talk.person-4.jpg")).shape == (30, 30, 3)
    assert (tmp_path / "talk.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not partials(tmp_path)


def _still(name: str, faces) -> Result:
    return Result(name, faces, image=np.full((60, 80, 3), 128, np.uint8))


def test_csv_rows_appear_under_the_final_name_only_when_closed(tmp_path):
    target = tmp_path / "faces.csv"
    sink = CsvSink(target)
    with sink:
        sink.write(_still("a.jpg", [_face("happy", box=(1, 2, 3, 4)), _face("sad")]))
        sink.write(_still("b.jpg", []))
        sink.write(_frame(5, [_face("fear", track=3, person=9)]))
        assert not target.exists() and len(partials(tmp_path)) == 1
    rows = list(csv.DictReader(open(target)))
    assert tuple(rows[0]) == CSV_FIELDS and sink.rows == len(rows) == 3
    assert [r["source"] for r in rows] == ["a.jpg", "a.jpg", "clip.mp4"]
    assert [r["face"] for r in rows] == ["0", "1", "0"]
    assert (rows[0]["x"], rows[0]["y"], rows[0]["w"], rows[0]["h"]) == ("1", "2", "3", "4")
    assert (rows[2]["frame"], rows[2]["track_id"], rows[2]["person_id"]) == ("5", "3", "9")
    assert float(rows[0]["happy"]) == pytest.approx(0.7) and rows[0]["frame"] == ""
    assert sink.written == [target] and not partials(tmp_path)


def test_csv_of_a_failed_run_is_removed_and_an_interrupted_one_kept(tmp_path):
    with pytest.raises(RuntimeError):
        with CsvSink(tmp_path / "failed.csv") as sink:
            sink.write(_still("a.jpg", [_face("happy")]))
            raise RuntimeError("a bug half-way")
    assert not (tmp_path / "failed.csv").exists() and not partials(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with CsvSink(tmp_path / "stopped.csv") as sink:
            sink.write(_still("a.jpg", [_face("happy")]))
            raise KeyboardInterrupt
    assert len((tmp_path / "stopped.csv").read_text().splitlines()) == 2  # header + the row
    assert not partials(tmp_path)


def test_csv_replaces_an_old_file_only_at_the_end_and_refuses_a_folder(tmp_path):
    target = tmp_path / "faces.csv"
    target.write_text("old contents\n")
    with CsvSink(target) as sink:
        sink.write(_still("a.jpg", [_face("neutral")]))
        assert target.read_text() == "old contents\n"
    assert target.read_text().startswith("source,frame,time")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(OutputError, match="names a folder"):
        CsvSink(tmp_path / "folder.csv")


def test_json_lines_sink_writes_one_object_per_result():
    stream = io.StringIO()
    with JsonLinesSink(stream) as sink:
        sink.write(_still("a.jpg", [_face("happy", box=(1, 2, 3, 4))]))
        sink.write(Result("b.jpg", error="not a readable image"))
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["source"] == "a.jpg" and first["faces"][0]["box"] == [1, 2, 3, 4]
    assert first["frame"] is None and "error" not in first
    assert second == {"source": "b.jpg", "frame": None, "time": None, "faces": [],
                      "error": "not a readable image"}


def _video_info(source="clip.mp4", frames=6) -> SourceInfo:
    return SourceInfo(source, "video", 160, 120, fps=10.0, frames=frames)


def test_annotated_video_summary_and_timeline_on_synthetic_frames(tmp_path):
    info = _video_info()
    with AnnotatedSink(tmp_path / "out") as sink:
        sink.start(info)
        for index in range(6):
            sink.write(_frame(index, [_face("happy", person=1)]))
            if index == 2:  # mid-video: the video is still under its temporary name
                assert not (tmp_path / "out" / "clip.mp4").exists()
                assert partials(tmp_path / "out")
        sink.end(info)
    video = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    video.release()
    summary = json.loads((tmp_path / "out" / "clip.summary.json").read_text())
    assert summary["frames"] == 6 and summary["faces"][0]["emotion_shares"]["happy"] == 1.0
    assert (tmp_path / "out" / "clip.timeline.png").exists()
    assert not partials(tmp_path)


def test_annotated_video_of_a_failed_run_leaves_nothing(tmp_path):
    info = _video_info()
    with pytest.raises(RuntimeError):
        with AnnotatedSink(tmp_path / "out") as sink:
            sink.start(info)
            sink.write(_frame(0, [_face("sad")]))
            raise RuntimeError("a bug half-way")
    assert list((tmp_path / "out").iterdir()) == []


def test_annotated_images_keep_their_suffix_and_get_distinct_names(tmp_path):
    with AnnotatedSink(tmp_path / "out") as sink:
        for source in ("a/face.png", "b/face.png", "c/face.bmp"):
            sink.start(SourceInfo(source, "image", 80, 60))
            sink.write(_still(source, [_face("happy", box=(10, 10, 30, 30))]))
            sink.end(SourceInfo(source, "image", 80, 60))
    # one stem per source whatever the suffix (a .bmp is written as JPEG)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "face.png", "face_1.png", "face_2.jpg"]
    drawn = cv2.imread(str(tmp_path / "out" / "face.png"))
    assert drawn.shape == (60, 80, 3) and not (drawn == 128).all()  # boxes were drawn
    with pytest.raises(OutputError, match="names a file"):
        AnnotatedSink(tmp_path / "out" / "face.png")

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import TESTDATA
from emotrace import EMOTIONS, Recognizer
from emotrace.inference import EmotionClassifier, Framing
from emotrace.inference.sinks import AnnotatedSink, CsvSink


@pytest.fixture(scope="module")
def panning_results(recognizer, panning_video):
    """The default pipeline's results on the panning video: the reference the faster options
    are compared with (read only)."""
    return recognizer.predict(panning_video)


@pytest.mark.parametrize("detector", ["yunet", "haar"])
@pytest.mark.parametrize("photo, faces", [("face.jpg", 4), ("grace_hopper.bmp", 1), ("cat.bmp", 0)])
def test_faces_found_in_real_photos(detector, photo, faces):
    results = Recognizer(detector=detector).predict(TESTDATA / photo)
    assert len(results) == 1 and results[0].ok
    assert len(results[0].faces) == faces


def test_result_json_shape(recognizer):
    data = recognizer.predict(str(TESTDATA / "grace_hopper.bmp"))[0].to_dict()
    assert set(data) == {"source", "frame", "time", "faces"}
    assert data["frame"] is None and data["time"] is None
    face = data["faces"][0]
    assert {"box", "score", "emotion", "scores", "landmarks"} <= set(face)
    x, y, w, h = face["box"]
    assert 100 < x < 300 and 50 < y < 250 and w > 100 and h > 100
    assert list(face["scores"]) == list(EMOTIONS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert len(face["landmarks"]) == 5 and 0.5 < face["score"] <= 1.0
    json.dumps(data)


def test_faces_of_a_frame_are_classified_in_one_batch(recognizer, monkeypatch):
    calls = []
    original = recognizer.classifier.predict_faces
    monkeypatch.setattr(recognizer.classifier, "predict_faces",
                        lambda faces: calls.append(len(faces)) or original(faces))
    recognizer.predict(TESTDATA / "face.jpg")
    assert calls == [4]


def test_numpy_grey_rgba_and_16bit_inputs(recognizer, tmp_path):
    bgr = cv2.imread(str(TESTDATA / "face.jpg"))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    deep = bgr.astype(np.uint16) * 257
    assert len(recognizer.predict(bgr)[0].faces) == 4
    for name, image in (("gray.png", gray), ("rgba.png", rgba), ("deep.png", deep)):
        cv2.imwrite(str(tmp_path / name), image)
        result = recognizer.predict(tmp_path / name)[0]
        assert result.ok and len(result.faces) == 4, name


def test_folder_is_recursive_and_sorted_and_glob_works(recognizer, tmp_path):
    (tmp_path / "b").mkdir()
    shutil.copy(TESTDATA / "face.jpg", tmp_path / "b" / "z.jpg")
    shutil.copy(TESTDATA / "cat.bmp", tmp_path / "a.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    sources = [r.source for r in recognizer.predict(tmp_path)]
    assert sources == [str(tmp_path / "a.bmp"), str(tmp_path / "b" / "z.jpg")]
    assert [r.source for r in recognizer.predict(str(tmp_path / "*.bmp"))] == [
        str(tmp_path / "a.bmp")]


def test_result_draws_and_saves(recognizer, tmp_path):
    result = recognizer.predict(TESTDATA / "face.jpg")[0]
    drawn = result.draw()
    assert drawn.shape == result.image.shape and not np.array_equal(drawn, result.image)
    path = result.save(tmp_path / "annotated.png")
    assert cv2.imread(str(path)).shape == result.image.shape


def test_video_frames_track_ids_csv_and_summary(recognizer, panning_video, tmp_path):
    with CsvSink(tmp_path / "faces.csv") as csv_sink, AnnotatedSink(tmp_path / "out") as annotated:
        results = recognizer.predict(panning_video, sinks=[csv_sink, annotated])
    assert [r.frame for r in results] == list(range(30))
    assert results[15].time == pytest.approx(0.5, abs=0.01)
    first = {f.track_id: f.box for f in results[0].faces}
    assert len(first) >= 4  # 2x2 tiles of a 4-face photo, some cut by the window
    # the two large faces of the top-left tile keep their ids through the pan
    big = [f for f in results[0].faces if f.box[1] < 200 and f.box[2] > 80]
    assert len(big) == 2
    for result in results[1:]:
        ids = {f.track_id for f in result.faces}
        assert {f.track_id for f in big} <= ids
    rows = list(csv.DictReader(open(tmp_path / "faces.csv")))
    assert len(rows) == sum(len(r.faces) for r in results)
    faces = [f for r in results for f in r.faces]
    assert [row["person_id"] for row in rows] == [str(f.person_id) for f in faces]
    # every video face has its person, once seen well (a poorly seen newcomer may wait)
    assert sum(bool(row["person_id"]) for row in rows) >= 0.95 * len(rows)
    summary = json.loads((tmp_path / "out" / "faces.summary.json").read_text())
    assert summary["frames"] == 30
    people = {f["person_id"]: f for f in summary["faces"]}  # the summary is per person
    for face in big:
        assert people[face.person_id]["frames"] == 30
        assert sum(people[face.person_id]["emotion_shares"].values()) == pytest.approx(1.0)
    video = cv2.VideoCapture(str(tmp_path / "out" / "faces.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert (tmp_path / "out" / "faces.timeline.png").stat().st_size > 10_000
    assert not list(tmp_path.rglob(".*partial*"))


def test_every_nth_frame_and_smoothing(recognizer, panning_video):
    results = Recognizer(smooth=0.8).predict(panning_video, every=3)
    assert [r.frame for r in results] == list(range(0, 30, 3))
    raw = recognizer.predict(panning_video, every=3)

    def series(rs):
        track = rs[0].faces[0].track_id
        return np.array([[f.scores["happy"] for f in r.faces if f.track_id == track][0] for r in rs])

    assert np.std(np.diff(series(results))) < np.std(np.diff(series(raw)))


def _iou(a, b):
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def _count_calls(monkeypatch, obj, name, size=len):
    calls = []
    original = getattr(obj, name)
    monkeypatch.setattr(obj, name, lambda *a: calls.append(size(a[0])) or original(*a))
    return calls


def test_classify_every_k_frames_carries_each_faces_scores(panning_video, panning_results,
                                                          monkeypatch):
    reference = panning_results
    fast = Recognizer(classify_every=3)
    crops = _count_calls(monkeypatch, fast.classifier, "predict_faces")
    results = fast.predict(panning_video)
    faces = [len(r.faces) for r in results]
    assert faces == [len(r.faces) for r in reference]
    # every face is classified on its first frame, then every 3rd frame, staggered by id
    assert crops[0] == faces[0] and sum(crops) <= sum(faces) / 3 + 2 * max(faces)
    carried = 0
    for previous, result in zip(results, results[1:]):
        before = {f.track_id: f.scores for f in previous.faces}
        for face in result.faces:
            if face.track_id in before and (result.frame + face.track_id) % 3:
                assert face.scores == before[face.track_id]  # not due: carried over
            elif face.track_id in before:
                carried += face.scores == before[face.track_id]
    assert carried == 0  # ... and due faces were classified afresh
    same = [f.emotion == g.emotion for r, q in zip(reference, results)
            for f, g in zip(r.faces, q.faces)]
    assert np.mean(same) >= 0.9


def test_detect_every_k_frames_follows_faces_with_the_tracker(panning_video, panning_results,
                                                             monkeypatch):
    reference = panning_results
    fast = Recognizer(detect_every=2)
    detected = _count_calls(monkeypatch, fast.detector, "detect", size=lambda image: 1)
    results = fast.predict(panning_video)
    assert len(detected) == 15  # frames 0, 2, ..., 28
    faces = np.array([len(r.faces) for r in results])
    expected = np.array([len(r.faces) for r in reference])
    assert abs(faces.sum() / expected.sum() - 1) <= 0.02 and np.abs(faces - expected).max() <= 1
    matched = []
    for ref, got in zip(reference[1::2], results[1::2]):  # the frames without detection
        ref_boxes = {f.track_id: f.box for f in ref.faces}
        for face in got.faces:
            assert face.landmarks is not None and face.score is not None
            if face.track_id in ref_boxes:  # the face pans 2 px a frame: the tracker follows
                matched.append(_iou(face.box, ref_boxes[face.track_id]))
    assert len(matched) >= 0.9 * expected[1::2].sum() and min(matched) > 0.7


@pytest.mark.parametrize("options", [{"classify_every": 0}, {"detect_every": 1.5},
                                     {"classify_every": 2, "track": False}])
def test_bad_every_options_are_refused(options):
    from emotrace.errors import ConfigError

    with pytest.raises(ConfigError):
        Recognizer(**options)


def test_stopping_a_video_early_waits_for_its_reader_thread(recognizer, panning_video):
    import threading

    def readers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("emotrace-decode")}

    before = readers()  # another test's reader still winding down is not this test's business
    results = recognizer.predict(panning_video, stream=True)
    next(results)
    assert readers() - before
    results.close()
    # gone when close() returns: a reader left inside OpenCV when Python exits (Ctrl-C) aborted
    # the process ("terminate called without an active exception") instead of exiting with 130
    assert not readers() - before


def test_framing_square_crop_pads_at_the_edges():
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crop = Framing(scale=1.5).crop(gray, (80, 80, 20, 20), 48)
    assert crop.shape == (48, 48)
    assert Framing(scale=1.2, shift_y=0.1).square((10, 20, 30, 40)) == (1, 21, 48)  # side 48, centre (25, 40 + 4.8)


def test_classifier_accepts_any_crop_sizes():
    classifier = EmotionClassifier()
    probs = classifier.predict_faces([np.zeros((30, 40), np.uint8), np.zeros((200, 200, 3), np.uint8)])
    assert probs.shape == (2, 7)
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert classifier.predict_faces([]).shape == (0, 7)


def test_min_face_skips_small_faces_and_shrinks_detection(recognizer):
    from emotrace.inference.detectors import YuNetDetector

    assert len(Recognizer(min_face=60).predict(TESTDATA / "face.jpg")[0].faces) == 2
    # default (24 px) detects VGA frames at half size and still finds the 44-px faces
    assert YuNetDetector(min_face=24).min_scale == 0.5
    default = recognizer.predict(TESTDATA / "face.jpg")[0].faces
    full = Recognizer(min_face=0).predict(TESTDATA / "face.jpg")[0].faces
    assert len(default) == len(full) == 4
    for a, b in zip(sorted(f.box for f in default), sorted(f.box for f in full)):
        assert np.abs(np.array(a) - np.array(b)).max() <= 6  # same faces, boxes within a few px

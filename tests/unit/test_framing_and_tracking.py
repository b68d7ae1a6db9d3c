"""Face framing (the square crop around a detector box) and face tracking across frames, on
synthetic frames and boxes."""

from __future__ import annotations

import numpy as np
import pytest

from emotrace.errors import ConfigError
from emotrace.inference.framing import Framing
from emotrace.inference.tracking import FaceTracker, ScoreSmoother


@pytest.mark.parametrize("framing, box, square", [
    (Framing(), (10, 20, 30, 40), (5, 20, 40)),               # side = max(w, h), same centre
    (Framing(scale=2.0), (100, 100, 50, 50), (75, 75, 100)),
    (Framing(scale=1.0, shift_y=0.25), (0, 0, 40, 40), (0, 10, 40)),  # moved down a quarter
    (Framing(scale=0.01), (5, 5, 10, 10), (10, 10, 1)),       # never a side of 0
])
def test_square_around_a_box(framing, box, square):
    assert framing.square(box) == square


def test_crop_inside_the_frame_is_the_pixels_resized():
    image = np.zeros((100, 100), np.uint8)
    image[40:60, 40:60] = 200
    crop = Framing().crop(image, (40, 40, 20, 20), 20)
    assert crop.shape == (20, 20) and (crop == 200).all()
    assert Framing().crop(image, (40, 40, 20, 20), 10).mean() == pytest.approx(200)


def test_crop_past_the_edge_replicates_the_border():
    image = np.tile(np.arange(100, dtype=np.uint8), (100, 1))  # column index as the value
    crop = Framing().crop(image, (-10, 30, 20, 20), 20)      # 10 columns left of the frame
    assert crop.shape == (20, 20)
    assert (crop[:, :10] == 0).all()                          # copies of column 0
    assert crop[0, 10:].tolist() == list(range(10))
    nowhere = Framing().crop(image, (500, 500, 20, 20), 16)   # wholly outside: a blank face
    assert nowhere.shape == (16, 16) and not nowhere.any()


def test_colour_crop_is_converted_to_grey():
    image = np.zeros((50, 50, 3), np.uint8)
    image[..., 2] = 255  # pure red in BGR
    crop = Framing().crop(image, (0, 0, 50, 50), 48)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert int(crop[0, 0]) == 76  # OpenCV's luma: 0.299 * 255


def test_tracker_keeps_ids_for_moving_faces_and_gives_new_ones():
    tracker = FaceTracker(fps=30)
    a, b = (10, 10, 50, 50), (300, 200, 60, 60)
    first = tracker.update([a, b])
    assert sorted(first) == [1, 2]
    for step in range(1, 8):  # both move 3 px a frame, in swapped order
        moved = [(b[0] - 3 * step, b[1], 60, 60), (a[0] + 3 * step, a[1], 50, 50)]
        assert tracker.update(moved) == [first[1], first[0]]
    newcomer = tracker.update([(a[0] + 24, 10, 50, 50), (600, 10, 40, 40)])
    assert newcomer == [first[0], 3]


def test_tracker_reset_starts_new_ids():
    tracker = FaceTracker()
    (before,) = tracker.update([(10, 10, 40, 40)])
    tracker.reset()
    (after,) = tracker.update([(10, 10, 40, 40)])
    assert after != before
    assert tracker.update([]) == []


def test_tracker_predicts_where_the_faces_of_the_last_detection_are():
    tracker = FaceTracker()
    for step in range(6):
        (face_id,) = tracker.update([(100 + 5 * step, 100, 40, 40)])
    ((predicted_id, box),) = tracker.predict()
    assert predicted_id == face_id and box.shape == (4,)
    assert box[0] > 120  # carried on to the right, past the last detection at x = 125


def test_score_smoother_is_an_exponential_average_per_track():
    smooth = ScoreSmoother(0.75)
    first = smooth(1, np.array([1.0, 0.0]))
    np.testing.assert_allclose(first, [1.0, 0.0])
    np.testing.assert_allclose(smooth(1, np.array([0.0, 1.0])), [0.75, 0.25])
    np.testing.assert_allclose(smooth(1, np.array([0.0, 1.0])), [0.5625, 0.4375])
    np.testing.assert_allclose(smooth(2, np.array([0.2, 0.8])), [0.2, 0.8])  # another face
    for alpha in (1.0, -0.1):
        with pytest.raises(ConfigError, match="smoothing must be in"):
            ScoreSmoother(alpha)

"""Sources and image files: every unreadable input becomes a result naming what is wrong, never a
crash; images of any depth and orientation come out as upright 8-bit BGR."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from emotrace.data.images import (ImageError, NotAnImageError, check_pixels, decode_image,
                                  read_image, to_bgr8)
from emotrace.inference.sources import (SourceError, expand_sources, is_live_source,
                                        is_video_source, open_source, sniff_video)


def _write_video(path, frames: int, size=(64, 48)) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), index * 20 % 255, np.uint8))
    writer.release()
    return str(path)


@pytest.mark.parametrize("setup, message", [
    (lambda p: p, "file not found"),
    (lambda p: p.write_bytes(b"") and p, r"empty file \(0 bytes\)"),
    (lambda p: p.write_text("a text file, not a picture") and p, "not a readable image"),
    (lambda p: p.mkdir() or p, "not a regular file"),
])
def test_unusable_image_files_raise_a_source_error_saying_why(tmp_path, setup, message):
    path = tmp_path / "photo.jpg"
    setup(path)
    with pytest.raises(SourceError, match=message) as error:
        open_source(str(path))
    assert error.value.source == str(path)


def test_truncated_png_is_not_readable(tmp_path):
    ok, encoded = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    (tmp_path / "cut.png").write_bytes(encoded.tobytes()[:120])
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(NotAnImageError):
        decode_image(b"GIF? no, plain text")
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        decode_image(b"")


def test_pixel_limit_is_checked_from_the_header_with_the_numbers(tmp_path):
    check_pixels(100, 100, limit=10_000)  # at the limit: fine
    with pytest.raises(ImageError, match=r"image too large \(20000x10000 = 200 MP; the limit "
                                         r"is 100 MP\)"):
        check_pixels(20000, 10000)
    cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((10, 300), np.uint8))
    with pytest.raises(ImageError, match="image too large"):
        read_image(tmp_path / "wide.png", max_pixels=2999)
    assert read_image(tmp_path / "wide.png", max_pixels=3000).shape == (10, 300, 3)


def test_any_depth_and_channel_count_becomes_bgr8():
    grey = np.array([[0, 128, 255]], np.uint8)
    assert to_bgr8(grey).shape == (1, 3, 3) and to_bgr8(grey)[0, 1].tolist() == [128] * 3
    deep = np.array([[0, 257 * 100, 65535]], np.uint16)
    assert to_bgr8(deep)[0, :, 0].tolist() == [0, 100, 255]
    unit_float = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert to_bgr8(unit_float)[0, :, 0].tolist() == [0, 127, 255]
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 200, 10
    assert to_bgr8(bgra).shape == (2, 2, 3) and (to_bgr8(bgra)[..., 0] == 200).all()
    assert to_bgr8(np.zeros((2, 2, 1), np.uint8)).shape == (2, 2, 3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_turns_the_photo_upright(tmp_path, orientation):
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:10, :20] = (0, 0, 255)  # a red block in the top-left corner
    # store it as a camera would, turned so that the tag brings it back
    stored = {3: cv2.rotate(upright, cv2.ROTATE_180),
              6: cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE),
              8: cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored[..., ::-1]).save(tmp_path / "phone.png", exif=exif)
    image = read_image(tmp_path / "phone.png")
    assert image.shape == upright.shape
    np.testing.assert_array_equal(image, upright)


def test_folders_are_expanded_recursively_sorted_and_empty_ones_are_errors(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("b/z.jpg", "a.PNG", "notes.txt", "b/clip.mp4"):
        (tmp_path / name).write_bytes(b"x")
    expanded = expand_sources([str(tmp_path / "b"), str(tmp_path), str(tmp_path / "empty")])
    assert expanded[:2] == [str(tmp_path / "b" / "clip.mp4"), str(tmp_path / "b" / "z.jpg")]
    assert expanded[2:5] == [str(tmp_path / "a.PNG"), str(tmp_path / "b" / "clip.mp4"),
                             str(tmp_path / "b" / "z.jpg")]
    error = expanded[5]
    assert isinstance(error, SourceError) and error.message == "folder has no image or video files"
    assert expand_sources(expanded) is expanded  # expanding twice changes nothing


def test_globs_match_files_and_unmatched_ones_are_errors(tmp_path):
    for name in ("one.jpg", "two.jpg", "three.png"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_sources(str(tmp_path / "*.jpg")) == [str(tmp_path / "one.jpg"),
                                                       str(tmp_path / "two.jpg")]
    (missing,) = expand_sources(str(tmp_path / "*.gif"))
    assert isinstance(missing, SourceError) and missing.message == "no file matches this pattern"
    assert expand_sources(["rtsp://cam/1", "0", 3]) == ["rtsp://cam/1", "0", 3]


def test_source_kinds():
    assert is_live_source(0) and is_live_source("2") and is_live_source("http://x/y.mjpg")
    assert not is_live_source("clip.mp4")
    assert is_video_source("a/B.MOV") and is_video_source("x.webm") and not is_video_source("a.jpg")


@pytest.mark.parametrize("head, suffix", [
    (b"\x00\x00\x00\x18ftypmp42" + bytes(20), ".mp4"),
    (b"\x1a\x45\xdf\xa3" + bytes(20), ".mkv"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", ".avi"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # a RIFF that is sound, not video
    (b"\x47" + bytes(187) + b"\x47" + bytes(187) + b"\x47" + bytes(10), ".ts"),
    (b"\x47" + bytes(300), None),              # one sync byte proves nothing
    (b"GIF89a" + bytes(10), ".gif"),
    (b"\xff\xd8\xff\xe0 a JPEG", None),
])
def test_video_containers_are_recognised_by_their_bytes(head, suffix):
    assert sniff_video(head) == suffix


def test_videos_open_with_their_facts_and_truncated_ones_say_where_they_ended(tmp_path):
    path = _write_video(tmp_path / "clip.mp4", 40)
    with open_source(path) as source:
        assert (source.info.kind, source.info.frames, source.info.fps) == ("video", 40, 10.0)
        assert (source.info.width, source.info.height) == (64, 48)
        frames = list(source.frames(every=3))
    assert [f.index for f in frames] == list(range(0, 40, 3))
    assert frames[1].time == pytest.approx(0.3) and frames[0].image.shape == (48, 64, 3)
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="cannot open the video|video ended at frame|decod"):
        with open_source(str(tmp_path / "cut.mp4")) as source:
            list(source.frames())
    (tmp_path / "fake.mp4").write_bytes(os.urandom(2000))
    with pytest.raises(SourceError, match="cannot open the video|no frame could be decoded"):
        with open_source(str(tmp_path / "fake.mp4")) as source:
            list(source.frames())


def test_arrays_are_still_sources():
    with open_source(np.zeros((20, 30), np.uint8)) as source:
        (frame,) = list(source.frames())
    assert source.info.kind == "array" and frame.image.shape == (20, 30, 3)
    assert frame.index is None and frame.time is None and not source.info.is_video

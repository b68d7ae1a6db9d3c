"""Reading image files safely: size checked before decoding, EXIF orientation applied, any
grey / colour / alpha / 16-bit image turned into 8-bit BGR. Shared by recognition and by every
dataset reader."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from emotrace.errors import EmotraceError

#: Images with more pixels are refused before they are decoded. OpenCV's JPEG decoder peaks at
#: about 6 bytes a pixel and an annotated copy takes 3 more: 100 MP (10000x10000) keeps one
#: image, annotated, under 1 GB of memory in all (measured: benchmarks/README, hardening notes).
MAX_PIXELS = 100_000_000
_ORIENTATION_TAG = 0x0112


class ImageError(EmotraceError, ValueError):
    """An image file that cannot be used; the message says why (the caller names the file).
    A user's mistake, not a bug: the CLI prints it as one line (exit code 2)."""


class NotAnImageError(ImageError):
    """The bytes are not in any image format emotrace reads (as opposed to a damaged image)."""


def image_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(width, height, exif_orientation)`` from the file's header, without decoding pixels.

    Args:
        path: an image file.

    Returns:
        Width and height as stored (before orientation) and the EXIF orientation, 1-8 (1 when
        the file has none or a damaged one).

    Raises:
        ImageError: the file is missing, empty, not a regular file, not an image, or claims more
            pixels than Pillow's own hard limit.

    Example:
        >>> image_header("../shared/testdata/face.jpg")
        (512, 355, 1)
    """
    file = Path(path)
    if not file.exists():
        raise ImageError("file not found")
    if not file.is_file():  # never open a device or a pipe: /dev/zero would never end
        raise ImageError("not a regular file (a device, a pipe or a folder)")
    if file.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    return _header(file)


def _header(source: Path | io.BytesIO) -> tuple[int, int, int]:
    try:
        with warnings.catch_warnings():  # our limit, checked next, gives the clear message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as header:
                width, height = header.size
                orientation = _orientation(header)
    except Image.DecompressionBombError as error:  # Pillow's hard limit is above ours
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(claimed[1]) / 1e6:.0f} MP" if claimed else "too many pixels"
        raise ImageError(f"image too large ({size}; the limit is {MAX_PIXELS / 1e6:.0f} MP): "
                         "downscale it first") from None
    except UnidentifiedImageError:
        raise NotAnImageError("not a readable image (corrupt, truncated or not an image "
                              "file)") from None
    except (OSError, SyntaxError, ValueError):
        raise ImageError("not a readable image (corrupt, truncated or not an image file)") from None
    return width, height, orientation


def _orientation(header: Image.Image) -> int:
    try:
        value = int(header.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block must not make the picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def check_pixels(width: int, height: int, limit: int = MAX_PIXELS) -> None:
    """Refuse an image with more than ``limit`` pixels, before anything decodes it.

    Args:
        width: the image's width in pixels.
        height: the image's height in pixels.
        limit: the largest pixel count accepted.

    Raises:
        ImageError: ``width * height`` is over the limit (the message says by how much).

    Example:
        >>> check_pixels(20000, 20000)
        Traceback (most recent call last):
        ...
        emotrace.data.images.ImageError: image too large (20000x20000 = 400 MP; the limit is 100 MP): downscale it first
    """
    if width * height > limit:
        raise ImageError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
                         f"the limit is {limit / 1e6:.0f} MP): downscale it first")


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to BGR uint8, upright as a photo viewer shows it.

    The pixel count is checked from the header before any decoding (a 2 MB PNG can claim
    30000x30000). Raises :class:`ImageError` when the file cannot be used.

    Args:
        path: an image file in any format OpenCV reads (grey, colour, alpha, 16-bit).
        max_pixels: the largest pixel count accepted.

    Returns:
        ``(height, width, 3)`` uint8 BGR image, EXIF orientation applied.

    Raises:
        ImageError: the file is missing, empty, damaged, not an image, or over ``max_pixels``.

    Example:
        >>> read_image("../shared/testdata/face.jpg").shape
        (355, 512, 3)
    """
    width, height, orientation = image_header(path)
    check_pixels(width, height, max_pixels)
    return _decode(np.fromfile(str(path), np.uint8), orientation)


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`read_image` for bytes in memory (an upload); :class:`NotAnImageError` when they
    are not an image at all, :class:`ImageError` when the image is damaged or too large.

    Args:
        data: the encoded image file's bytes.
        max_pixels: the largest pixel count accepted.

    Returns:
        ``(height, width, 3)`` uint8 BGR image, EXIF orientation applied.

    Raises:
        NotAnImageError: the bytes are in no image format emotrace reads.
        ImageError: the image is empty, damaged or over ``max_pixels``.

    Example:
        >>> decode_image(open("../shared/testdata/face.jpg", "rb").read()).shape
        (355, 512, 3)
        >>> decode_image(b"hello")
        Traceback (most recent call last):
        ...
        emotrace.data.images.NotAnImageError: not a readable image (corrupt, truncated or not an image file)
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    width, height, orientation = _header(io.BytesIO(data))
    check_pixels(width, height, max_pixels)
    return _decode(np.frombuffer(data, np.uint8), orientation)


def _decode(buffer: np.ndarray, orientation: int) -> np.ndarray:
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError("not a readable image (corrupt, truncated or not an image file)")
    return apply_orientation(to_bgr8(image), orientation)


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF orientation 1-8 upright.

    Args:
        image: the pixels as stored in the file.
        orientation: the EXIF orientation tag, 1-8 (any other value leaves the image as is).

    Returns:
        The image as a photo viewer shows it (rotated and/or mirrored).

    Example:
        >>> apply_orientation(np.zeros((2, 3, 3), np.uint8), 6).shape
        (3, 2, 3)
    """
    if orientation in (5, 6, 7, 8):
        image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE if orientation in (5, 6)
                           else cv2.ROTATE_90_COUNTERCLOCKWISE)
        return cv2.flip(image, 1) if orientation in (5, 7) else image
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    return image


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any grey / BGR / BGRA image of uint8, uint16 or float to 3-channel BGR uint8.

    Args:
        image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16, or float
            in [0, 1] or [0, 255].

    Returns:
        ``(H, W, 3)`` uint8 BGR image (alpha dropped, 16-bit scaled down).

    Example:
        >>> to_bgr8(np.full((4, 4), 65535, np.uint16))[0, 0].tolist()
        [255, 255, 255]
    """
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def resize_face(face: np.ndarray, size: int) -> np.ndarray:
    """A grey face crop resized to ``size`` x ``size`` the one way emotrace does it everywhere
    (training, validation, test and inference): OpenCV area averaging when shrinking, bilinear
    when enlarging.

    Args:
        face: a grey face crop (square in practice; any shape is stretched to the square).
        size: side of the result.

    Returns:
        ``(size, size)`` image of the same dtype (``face`` itself when it already has that size).

    Example:
        >>> resize_face(np.zeros((100, 100), np.uint8), 96).shape
        (96, 96)
    """
    if face.shape[:2] == (size, size):
        return face
    shrink = face.shape[0] > size
    return cv2.resize(face, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


#: Contrast-limited adaptive histogram equalisation of the model-sized face (scaling "clahe"):
#: on the muxspace dev set, equalising the shipped model's input at test time alone cut the neutral
#: faces read as angry or sad from 47% to 35% (benchmarks/results/realworld_rules.md); a model
#: trained on equalised faces sees dim, washed-out and tinted faces alike.
CLAHE_CLIP, CLAHE_TILES = 2.0, (4, 4)


def equalize_face(face: np.ndarray) -> np.ndarray:
    """A grey uint8 face with its local contrast equalised (CLAHE, clip 2, 4x4 tiles), the one
    way training and inference do it for models whose card says ``"scaling": "clahe"``.

    Args:
        face: a grey face, uint8 (a model-sized crop).

    Returns:
        The equalised face, same shape, uint8.

    Example:
        >>> equalize_face(np.zeros((96, 96), np.uint8)).shape
        (96, 96)
    """
    return cv2.createCLAHE(CLAHE_CLIP, CLAHE_TILES).apply(np.ascontiguousarray(face, np.uint8))


def read_gray(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Like :func:`read_image`, as one grey channel (what the emotion models take).

    Args:
        path: an image file.
        max_pixels: the largest pixel count accepted.

    Returns:
        ``(height, width)`` uint8 grey image, EXIF orientation applied.

    Raises:
        ImageError: as :func:`read_image`.

    Example:
        >>> read_gray("../shared/testdata/face.jpg").shape
        (355, 512)
    """
    image = read_image(path, max_pixels)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)

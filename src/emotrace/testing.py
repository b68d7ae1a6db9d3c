"""Synthetic inputs for tests, benchmarks and demos: a panning video of real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_panning_video(photo: str | Path, path: str | Path, frames: int = 30,
                        size: tuple[int, int] = (640, 480), tiles: int = 2, step: int = 1,
                        fps: float = 30.0) -> Path:
    """Tile ``photo`` ``tiles`` x ``tiles`` and pan a ``size`` window over it by ``step`` pixels
    per frame (faces move, so trackers have work to do). Writes an MP4 (mp4v)."""
    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    width, height = size
    canvas = np.tile(image, (tiles, tiles, 1))
    scale = max(height / canvas.shape[0], (width + frames * step) / canvas.shape[1], 1.0)
    if scale > 1.0:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        x = index * step
        writer.write(np.ascontiguousarray(canvas[:height, x:x + width]))
    writer.release()
    return Path(path)


def write_lecture_hall(photo: str | Path, path: str | Path, frames: int = 150,
                       fps: float = 30.0) -> Path:
    """A 1920x1080 "lecture hall": ``photo`` scaled to 480x360, tiled 4 across and 3 down (about
    48 faces with ``../shared/testdata/face.jpg``), panned one pixel per frame. MP4 (mp4v)."""
    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    canvas = np.tile(cv2.resize(image, (480, 360)), (3, 4 + -(-frames // 480), 1))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1920, 1080))
    for index in range(frames):
        writer.write(np.ascontiguousarray(canvas[:1080, index:index + 1920]))
    writer.release()
    return Path(path)


def write_png_bomb(path: str | Path, side: int = 30000) -> Path:
    """A valid grey PNG of ``side`` x ``side`` black pixels that is tiny on disk (a decompression
    bomb: 30000 px decodes to 900 MB). Written row by row, never held in memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return Path(path)


class FileServer:
    """A plain HTTP server for a folder on 127.0.0.1 (no range requests, like many simple
    servers). Paths starting with ``stall-`` send 40% of the file, then stall for ``stall_s``.
    Use as a context manager; :meth:`url` gives a file's address."""

    def __init__(self, folder: str | Path, stall_s: float = 30.0) -> None:
        import functools
        import http.server
        import threading
        import time

        class Handler(http.server.SimpleHTTPRequestHandler):
            def copyfile(self, source, target):
                if "/stall-" not in self.path:
                    return super().copyfile(source, target)
                data = source.read()
                target.write(data[: int(len(data) * 0.4)])
                target.flush()
                time.sleep(stall_s)

            def translate_path(self, path):
                return super().translate_path(path.replace("/stall-", "/"))

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_y4m(photo: str | Path, path: str | Path, frames: int = 30,
              size: tuple[int, int] = (640, 480), step: int = 2, fps: int = 15) -> Path:
    """A raw YUV4MPEG2 (4:2:0) clip of ``photo`` panning, for Chromium's fake camera
    (``--use-file-for-fake-video-capture``)."""
    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    width, height = size
    scale = max(height / image.shape[0], (width + frames * step) / image.shape[1])
    canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            window = np.ascontiguousarray(canvas[:height, index * step:index * step + width])
            handle.write(b"FRAME\n" + cv2.cvtColor(window, cv2.COLOR_BGR2YUV_I420).tobytes())
    return Path(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """Serve an ASGI ``app`` as ``emotrace serve`` does (uvicorn with the header deadline) on
    127.0.0.1 in a thread (a real socket, for tests that need raw HTTP). Use as a context manager: started on entry, stopped on exit whatever
    happened; :attr:`url` is its address."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        from emotrace.server.http import uvicorn_config

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.server.install_signal_handlers = lambda: None  # uvicorn < 0.29 asks; newer ignore
        self.thread = None

    def __enter__(self) -> ThreadedServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)

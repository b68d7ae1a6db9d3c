# ruff: noqa: F811  (tests take test_server's module fixtures `clip` and `client` as arguments)
"""The service under the cases users (and attackers) actually hit: a second server on the same
folder, large photos, uploads without the token, concurrent uploads, other sites' pages, deleted
jobs' traces (issue 29). Real servers on real sockets, started and stopped by the tests; one
server (default settings) serves the module's tests that need no settings of their own."""

import json
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")

from conftest import TESTDATA, cli  # noqa: E402
from emotrace.server import ServerSettings, create_app  # noqa: E402
from emotrace.testing import (ThreadedServer, free_port, write_panning_video,  # noqa: E402
                              write_png_bomb)
# the module's own server and clip come from test_server's module fixtures (one each here)
from test_server import TestClient, clip, client, upload, wait_for  # noqa: E402, F401

PHOTO = (TESTDATA / "face.jpg").read_bytes()
TOKEN = "s3cret-token"
CLI = [sys.executable, "-m", "emotrace.cli.main"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """900 frames (a job that runs long enough to be interrupted, cancelled or watched)."""
    return write_panning_video(TESTDATA / "face.jpg", tmp_path_factory.mktemp("long") / "long.mp4",
                               frames=900, step=0)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """One real server with a token on a socket, for the module's raw-HTTP tests."""
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("guarded"), token=TOKEN,
                              max_image_bytes=2 * 1024 * 1024, max_video_bytes=5 * 1024 * 1024)
    with ThreadedServer(create_app(settings)) as server:
        yield server


def raw_request(server: ThreadedServer, head: str, body: bytes = b"",
                timeout: float = 5.0) -> bytes:
    """Send ``head`` (and ``body``) on a fresh connection; what the server answers within
    ``timeout`` seconds (an empty answer when it waits for more)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            pass
        return answer


# 1. a second server on the same folder or port ------------------------------------------------
def start_server(data: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "serve", "--port", str(port), "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_up(process: subprocess.Popen, port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emotrace serve did not start: {process.stderr.read()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError("emotrace serve did not answer")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_second_server_on_the_same_folder_or_port_leaves_the_running_job_alone(tmp_path,
                                                                                 long_clip):
    data, port = tmp_path / "data", free_port()
    first = start_server(data, port)
    try:
        wait_until_up(first, port)
        base = f"http://127.0.0.1:{port}"
        # no annotated video: the job leaves the second servers' start-ups more of the CPU
        job_id = httpx.post(f"{base}/v1/jobs?annotate=false",
                            files=upload("long.mp4", long_clip.read_bytes()),
                            timeout=30).json()["id"]
        deadline = time.time() + 60
        while httpx.get(f"{base}/v1/jobs/{job_id}").json()["progress"]["frames_done"] == 0:
            assert time.time() < deadline
            time.sleep(0.2)
        # both at once: each must stop by itself, before it touches the job
        same_port, same_folder = (subprocess.Popen(
            [*CLI, "serve", "--port", str(chosen), "--data-dir", str(data)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for chosen in (port, free_port()))
        try:
            port_err, folder_err = (same_port.communicate(timeout=60)[1],
                                    same_folder.communicate(timeout=60)[1])
        finally:
            stop(same_port)
            stop(same_folder)
        assert same_port.returncode == 2 and "cannot listen on" in port_err
        assert same_folder.returncode == 2, folder_err
        assert f"in use by another emotrace serve (process {first.pid})" in folder_err
        assert "Traceback" not in port_err + folder_err
        job = httpx.get(f"{base}/v1/jobs/{job_id}").json()
        assert job["status"] == "running" and job["warning"] is None, job
        with sqlite3.connect(data / "jobs.sqlite") as db:
            assert db.execute("SELECT attempts FROM jobs").fetchone()[0] == 1
    finally:
        stop(first)
    assert first.returncode == 0, first.stderr.read()


def test_job_errors_never_carry_server_paths(tmp_path, clip):
    settings = ServerSettings(data_dir=tmp_path / "data")
    stopped = TestClient(create_app(settings))  # no lifespan: the job waits
    job_id = stopped.post("/v1/jobs", files=upload("talk.mp4", clip)).json()["id"]
    files = stopped.app.state.store.files(job_id, stopped.app.state.store.get(job_id))
    files.out.write_text("a file where the output folder goes")
    with TestClient(create_app(settings)) as client:
        job = wait_for(client, job_id)
    assert job["status"] == "failed" and "out" in job["error"]
    assert str(tmp_path) not in json.dumps(job)


# 2. decoding off the event loop -----------------------------------------------------------------
def test_a_large_photo_does_not_stall_other_requests(tmp_path, guarded):
    big = write_png_bomb(tmp_path / "big.png", side=9999).read_bytes()  # 100 MP, under the limit
    server = guarded
    answers = []
    posting = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{server.url}/v1/predict", files=upload("big.png", big), timeout=120,
        headers={"Authorization": f"Bearer {TOKEN}"})))
    posting.start()
    worst = 0.0
    while posting.is_alive():
        started = time.perf_counter()
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.05)
    assert answers[0].status_code == 200 and answers[0].json()["faces"] == []
    assert worst < 1.0, f"/health waited {worst:.1f} s while the photo was decoded"


def test_webcam_frames_have_a_small_pixel_cap(tmp_path, client):
    frame = write_png_bomb(tmp_path / "frame.png", side=5000).read_bytes()  # 25 MP
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(frame)
        assert "image too large (5000x5000 = 25 MP" in ws.receive_json()["error"]
        ws.send_bytes(PHOTO)
        assert len(ws.receive_json()["faces"]) == 4


def test_concurrent_decodes_are_bounded_by_the_memory_budget():
    import anyio

    from emotrace.server.pool import MemoryBudget, decode_cost

    assert decode_cost(PHOTO) == 512 * 355 * 9
    budget, peak, inside = MemoryBudget(100), [], []

    async def use(size: int) -> None:
        async with budget.hold(size):
            inside.append(size)
            peak.append((len(inside), sum(inside)))
            await anyio.sleep(0.01)
            inside.remove(size)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for size in (60, 60, 30, 500, 10):
                group.start_soon(use, size)

    anyio.run(main)
    assert len(peak) == 5 and budget.used == 0
    assert all(total <= 100 for together, total in peak if together > 1)  # 500 ran alone


# 5. the token and the declared length before the body ----------------------------------------
def test_the_token_and_the_declared_length_are_checked_before_the_body(guarded):
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 300000000\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n{auth}\r\n")
    refused = raw_request(guarded, head.format(auth=""))
    assert refused.startswith(b"HTTP/1.1 401"), refused
    too_long = raw_request(guarded, head.format(auth=f"Authorization: Bearer {TOKEN}\r\n"))
    assert too_long.startswith(b"HTTP/1.1 413"), too_long
    assert list((Path(guarded.server.config.app.state.settings.data_dir) / "jobs").iterdir()) == []


def test_413_from_a_body_longer_than_declared_is_json(guarded):
    body = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
    body += b"\0" * (4 * 1024 * 1024) + b"\r\n--x--\r\n"
    response = httpx.post(f"{guarded.url}/v1/predict", content=iter([body]),  # chunked
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("the upload is larger than 3 MB")


def test_a_body_that_stalls_is_cut(tmp_path):
    settings = ServerSettings(data_dir=tmp_path, body_timeout_s=1.0)
    with ThreadedServer(create_app(settings)) as server:
        started = time.monotonic()
        answer = raw_request(server, "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Length: 1000\r\nContent-Type: multipart/form-data;"
                                     " boundary=x\r\n\r\n", b"--x\r\n", timeout=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 5


# 4. --max-queued under concurrent uploads --------------------------------------------------------
def test_max_queued_holds_under_concurrent_uploads(tmp_path, clip):
    client = TestClient(create_app(ServerSettings(data_dir=tmp_path, max_queued_jobs=2)))
    codes, barrier = [], threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        codes.append(client.post("/v1/jobs", files=upload("v.mp4", clip)).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(codes) == [202, 202] + [429] * 6
    assert len(client.get("/v1/jobs").json()) == 2
    assert len(list((tmp_path / "jobs").iterdir())) == 2


# 9. DNS rebinding and cross-site requests ------------------------------------------------------
def test_localhost_server_refuses_other_hosts_and_cross_site_requests(tmp_path, client):
    rebound = client.get("/v1/jobs", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 400 and "localhost only" in rebound.json()["detail"]
    assert client.get("/v1/jobs", headers={"Host": "localhost:8000"}).status_code == 200
    cross = client.post("/v1/predict", files=upload("face.jpg", PHOTO),
                        headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "--cors-origin" in cross.json()["detail"]
    same = client.post("/v1/predict", files=upload("face.jpg", PHOTO),
                       headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 200
    with pytest.raises(Exception):
        with client.websocket_connect("/v1/stream",
                                      headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
    with client.websocket_connect("/v1/stream", headers={"Origin": "http://127.0.0.1"}) as ws:
        ws.send_bytes(PHOTO)
        assert len(ws.receive_json()["faces"]) == 4
    allowed = ServerSettings(data_dir=tmp_path / "b", cors_origins=("http://app.example",))
    with TestClient(create_app(allowed)) as client:  # no lifespan needed: no job runs
        answer = client.post("/v1/predict", files=upload("face.jpg", PHOTO),
                             headers={"Origin": "http://app.example"})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "http://app.example"
    public = ServerSettings(data_dir=tmp_path / "c", host="0.0.0.0")
    with TestClient(create_app(public)) as client:  # a public address: any host name
        assert client.get("/v1/jobs", headers={"Host": "emotrace.example"}).status_code == 200


# 10. deletes leave no trace; owner-only files ---------------------------------------------------
def test_deleted_jobs_leave_no_trace_and_files_are_private(tmp_path, clip):
    data = tmp_path / "data"
    with TestClient(create_app(ServerSettings(data_dir=data))) as client:
        job_id = client.post("/v1/jobs?every=4",  # 5 frames: every file a job writes
                             files=upload("secret-interview.mp4", clip)).json()["id"]
        assert wait_for(client, job_id)["status"] == "done"
        modes = {path.relative_to(data): stat.S_IMODE(path.stat().st_mode)
                 for path in [data, *data.rglob("*")]}
        assert all(mode == (0o700 if (data / path).is_dir() else 0o600)
                   for path, mode in modes.items()), modes
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    for file in data.glob("jobs.sqlite*"):
        content = file.read_bytes()
        assert b"secret" not in content and job_id.encode() not in content, file.name


# 3. job options and the time left --------------------------------------------------------------
@pytest.fixture(scope="module")
def talk(client, clip) -> dict:
    """A done job of the module's server: "talk.mp4", without the annotated video, every 2nd
    frame, with the fast model."""
    created = client.post("/v1/jobs?annotate=false&every=2&model=fast",
                          files=upload("talk.mp4", clip))
    assert created.status_code == 202, created.text
    return wait_for(client, created.json()["id"])


def test_a_job_can_skip_the_video_and_choose_every_and_the_model(client, clip, talk):
    unknown = client.post("/v1/jobs?model=huge", files=upload("v.mp4", clip))
    assert unknown.status_code == 422
    job, job_id = talk, talk["id"]
    assert job["status"] == "done", job
    assert job["options"] == {"annotate": False, "every": 2, "model": "fast"}
    assert job["progress"]["frames_done"] == job["progress"]["frames_total"] == 10
    assert client.get(f"/v1/jobs/{job_id}/summary").json()["frames"] == 10
    assert client.get(f"/v1/jobs/{job_id}/timeline.png").status_code == 200
    assert client.get(f"/v1/jobs/{job_id}/video").status_code == 404


def test_a_running_job_shows_the_time_left_and_can_be_cancelled(client, long_clip):
    job_id = client.post("/v1/jobs", files=upload("long.mp4", long_clip.read_bytes())).json()["id"]
    deadline = time.time() + 60
    while (job := client.get(f"/v1/jobs/{job_id}").json())["progress"]["eta_s"] is None:
        assert time.time() < deadline, job
        time.sleep(0.1)
    progress = job["progress"]
    assert job["status"] == "running" and progress["eta_s"] > 0
    expected = (progress["frames_total"] - progress["frames_done"]) / progress["fps"]
    assert abs(progress["eta_s"] - expected) < 0.2
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not client.app.state.store.files(job_id).root.exists()


# 6. restart accounting ----------------------------------------------------------------------------
def test_clean_stops_cost_a_job_nothing_and_deaths_fail_it_the_third_time(tmp_path, long_clip):
    settings = ServerSettings(data_dir=tmp_path / "data")
    for _ in range(2):  # two clean stops (SIGTERM, Ctrl-C) while the job runs
        with TestClient(create_app(settings)) as client:
            jobs = client.get("/v1/jobs").json()
            job_id = jobs[0]["id"] if jobs else client.post(
                "/v1/jobs?annotate=false", files=upload("long.mp4", long_clip.read_bytes())
            ).json()["id"]
            deadline = time.time() + 60
            while (job := client.get(f"/v1/jobs/{job_id}").json())["progress"]["frames_done"] == 0:
                assert time.time() < deadline and job["status"] in ("queued", "running"), job
                time.sleep(0.1)
        job = client.app.state.store.get(job_id)
        assert job["status"] == "queued" and job["attempts"] == 0, job
        assert "runs again when the server starts" in job["warning"]
    store = client.app.state.store
    store.update(job_id, status="running", attempts=3)  # the third death (SIGKILL, crash)
    store.recover()
    job = store.get(job_id)
    assert job["status"] == "failed" and job["warning"] is None
    assert job["error"] == ("the server died 3 times while this job was running (killed or "
                            "crashed); it is not retried")


# 8. every video format the CLI reads -------------------------------------------------------------
def write_clip(path: Path, container: str, codec: str, frames: int = 24) -> Path:
    import av
    import cv2
    import numpy as np

    image = cv2.resize(cv2.imread(str(TESTDATA / "face.jpg")), (320, 224))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 224, "yuv420p"
        for index in range(frames):
            frame = np.roll(image, index, axis=1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
    return path


FORMATS = {"clip.ts": ("mpegts", "mpeg2video"), "clip.wmv": ("asf", "wmv2"),
           "clip.mpg": ("mpeg", "mpeg1video"), "clip.flv": ("flv", "flv")}


@pytest.fixture(scope="module")
def formats(tmp_path_factory, client) -> dict:
    """Each of :data:`FORMATS` read by the CLI (one run, with a copy that lost its suffix) and
    posted as a job (as ``upload.bin``) to the module's server: the CLI's exit status and
    stderr, and each job when it ended."""
    pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("formats")
    paths = [write_clip(folder / name, *FORMATS[name]) for name in FORMATS]
    (folder / "no-suffix").write_bytes(paths[0].read_bytes())  # sniffed, read as a video
    ids = {}
    for path in paths:
        created = client.post("/v1/jobs?annotate=false",
                              files=upload("upload.bin", path.read_bytes()))
        assert created.status_code == 202, created.text
        ids[path.name] = created.json()["id"]
    # the CLI reads them in this process while the server's job thread works on its copies
    read = cli("predict", *paths, folder / "no-suffix", "--csv", folder / "f.csv")
    return {"cli": (read.returncode, read.stderr),
            "jobs": {name: wait_for(client, job_id) for name, job_id in ids.items()},
            "csv": (folder / "f.csv").read_text() if read.returncode == 0 else ""}


@pytest.mark.parametrize("name", FORMATS)
def test_videos_the_cli_reads_are_jobs_too(formats, name):
    returncode, stderr = formats["cli"]
    assert returncode == 0, stderr  # every clip read whole, the suffix-less one too
    sources = {Path(line.split(",", 1)[0]).name for line in formats["csv"].splitlines()[1:]}
    assert name in sources and "no-suffix" in sources
    job = formats["jobs"][name]
    assert job["status"] == "done", job
    assert job["progress"]["frames_done"] == job["progress"]["frames_total"] == 24


# 11. retention on a timer -------------------------------------------------------------------------
def test_retention_runs_on_a_timer(tmp_path, clip):
    settings = ServerSettings(data_dir=tmp_path, retention_days=1, prune_every_s=0.3)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.store
        job_id, path = store.reserve("old.mp4", ".mp4", 10)
        path.write_bytes(clip)
        with sqlite3.connect(store.db) as db:  # a job that finished two days ago
            db.execute("UPDATE jobs SET status = 'done', updated = ? WHERE id = ?",
                       (time.time() - 2 * 86400, job_id))
        deadline = time.time() + 10
        while store.get(job_id) is not None or path.parent.exists():  # row, then files
            assert time.time() < deadline, "retention did not run while the server was up"
            time.sleep(0.1)


# 7, 12. smaller items -------------------------------------------------------------------------------
def test_webcam_with_a_wrong_token_is_told_why(tmp_path):
    from starlette.websockets import WebSocketDisconnect

    with TestClient(create_app(ServerSettings(data_dir=tmp_path, token=TOKEN))) as client:
        with client.websocket_connect("/v1/stream?token=wrong-token") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
    assert closed.value.code == 1008 and "token" in closed.value.reason


def test_job_ids_with_a_trailing_newline_and_error_codes_in_openapi(client):
    from emotrace.server.jobs import valid_job_id

    assert valid_job_id("0" * 32) and not valid_job_id("0" * 32 + "\n")
    assert client.get("/v1/jobs/" + "0" * 32 + "%0A").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/jobs"]["post"]["responses"]) >= {"202", "401", "413", "415", "429"}
    assert set(paths["/v1/predict"]["post"]["responses"]) >= {"200", "401", "413", "415", "422"}
    assert set(paths["/v1/jobs/{job_id}/video"]["get"]["responses"]) >= {"401", "404", "409"}
    assert set(paths["/v1/jobs/{job_id}"]["delete"]["responses"]) >= {"204", "401", "404"}


def test_annotated_photo_numbers_its_faces_like_the_table(client):
    import base64

    import cv2
    import numpy as np

    from emotrace import Recognizer
    from emotrace.server.pool import label_box

    answer = client.post("/v1/predict?annotate=true", files=upload("face.jpg", PHOTO)).json()
    image = cv2.imdecode(np.frombuffer(base64.b64decode(answer["annotated"].split(",")[1]),
                                       np.uint8), cv2.IMREAD_COLOR)
    plain = Recognizer().predict(TESTDATA / "face.jpg")[0].draw()
    changed = np.abs(image.astype(int) - plain.astype(int)).max(axis=2) > 100
    inside = np.zeros_like(changed)
    for index, face in enumerate(answer["faces"], 1):
        x0, y0, x1, y1, _ = label_box(face["box"], image.shape, f"#{index}")
        label = image[y0:y1, x0:x1]
        assert (label.max(axis=2) > 200).mean() > 0.05  # white digits on the black label
        assert (label.max(axis=2) < 40).mean() > 0.4
        inside[y0:y1, x0:x1] = True
    assert changed[~inside].mean() < 0.002  # nothing else of the drawing changed


# person thumbnails (the per-person table of the page) -----------------------------------------
def test_person_thumbnails_are_served_for_their_job_only(client, talk):
    job_id = talk["id"]
    assert talk["status"] == "done"
    summary = client.get(f"/v1/jobs/{job_id}/summary").json()
    people = [f for f in summary["faces"] if f.get("thumbnail")]
    assert people and all(f["thumbnail"] == f"talk.person-{f['person_id']}.jpg"
                          for f in people)
    for person in people:
        image = client.get(f"/v1/jobs/{job_id}/people/{person['person_id']}.jpg")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:3] == b"\xff\xd8\xff"
    missing = max(f["person_id"] for f in people) + 1
    for bad in (str(missing), "0", "01", "-1", "1x", "1%0A", "..%2Ftalk.summary",
                "99999999999"):
        assert client.get(f"/v1/jobs/{job_id}/people/{bad}.jpg").status_code == 404, bad
    assert client.get(f"/v1/jobs/{'0' * 32}/people/1.jpg").status_code == 404
    uploading, _ = client.app.state.store.reserve("u.mp4", ".mp4", 10)
    assert client.get(f"/v1/jobs/{uploading}/people/1.jpg").status_code == 404


def test_headers_at_one_byte_a_second_are_cut(tmp_path, monkeypatch):
    from emotrace.server import http

    monkeypatch.setattr(http, "HEADER_TIMEOUT_S", 1.5)
    with ThreadedServer(create_app(ServerSettings(data_dir=tmp_path))) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started, closed = time.monotonic(), False
            for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 30:
                try:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.25)
                    sock.setblocking(False)
                    try:
                        closed = sock.recv(1) == b""
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                except OSError:
                    closed = True
                if closed:
                    break
            assert closed and time.monotonic() - started < 5
        # a slow second request on a kept-alive connection is cut too
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = sock.recv(65536)
            assert response.startswith(b"HTTP/1.1 200")
            head, _, body = response.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:  # the body may come in its own segment under load
                body += sock.recv(65536)
            started = time.monotonic()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
            assert sock.recv(65536) == b""  # closed by the server ...
            assert 1.0 < time.monotonic() - started < 5  # ... at the header deadline
        # a normal client on a kept-alive connection and the WebSocket are not cut
        with httpx.Client(base_url=server.url) as client:
            for _ in range(2):
                assert client.get("/health").status_code == 200
                time.sleep(1.0)
        import websockets.sync.client as ws_client

        with ws_client.connect(f"ws://127.0.0.1:{server.port}/v1/stream") as ws:
            time.sleep(2.0)  # longer than the header deadline
            ws.send(PHOTO)
            assert len(json.loads(ws.recv(timeout=30))["faces"]) == 4

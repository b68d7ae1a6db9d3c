"""The HTTP API through FastAPI's test client: every route, every error code, auth on and off,
restarts, retention, the WebSocket stream, the OpenAPI document. One server (and one finished
job) serves the module's tests that need no settings of their own."""

import base64
import io
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")

from fastapi.testclient import TestClient as _TestClient  # noqa: E402


class TestClient(_TestClient):
    """The test client as a local browser: the server answers to local host names only."""

    __test__ = False

    def __init__(self, app, **kwargs) -> None:
        super().__init__(app, base_url="http://127.0.0.1", **kwargs)

    def websocket_connect(self, url: str, *args, **kwargs):
        return super().websocket_connect("ws://127.0.0.1" + url if url.startswith("/") else url,
                                         *args, **kwargs)


from conftest import TESTDATA  # noqa: E402
from emotrace.server import ServerSettings, create_app  # noqa: E402
from emotrace.testing import write_panning_video, write_png_bomb  # noqa: E402

PHOTO = (TESTDATA / "face.jpg").read_bytes()
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = write_panning_video(TESTDATA / "face.jpg", tmp_path_factory.mktemp("clip") / "c.mp4",
                               frames=20, step=3)
    return path.read_bytes()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The module's server (default settings), stopped after its last test."""
    data = tmp_path_factory.mktemp("server") / "data"
    with TestClient(create_app(ServerSettings(data_dir=data))) as client:
        yield client


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server with an access token."""
    data = tmp_path_factory.mktemp("guarded")
    with TestClient(create_app(ServerSettings(data_dir=data, token=TOKEN)),
                    raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def lecture(client, clip) -> dict:
    """A job of the module's server, done: the clip posted as "my lecture.mp4"."""
    created = client.post("/v1/jobs", files=upload("my lecture.mp4", clip, "video/mp4"))
    assert created.status_code == 202
    assert created.json() == {"id": created.json()["id"], "status": "queued"}
    return wait_for(client, created.json()["id"])


def upload(name: str, data: bytes, kind: str = "application/octet-stream"):
    return {"file": (name, io.BytesIO(data), kind)}


def wait_for(client, job_id: str, timeout: float = 120, headers=None) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job)


def test_health(client):
    assert client.get("/health").json() == {"status": "ok",
                                            "model": "emotrace-mobilenetv2-fer2013",
                                            "version": "0.1.0"}


def test_predict_a_photo_like_the_cli(client):
    answer = client.post("/v1/predict", files=upload("face.jpg", PHOTO, "image/jpeg")).json()
    assert set(answer) == {"source", "frame", "time", "faces"}
    assert answer["source"] == "face.jpg" and answer["frame"] is None
    assert len(answer["faces"]) == 4
    assert [f["emotion"] for f in answer["faces"]] == ["neutral", "sad", "neutral", "neutral"]
    annotated = client.post("/v1/predict?annotate=true", files=upload("face.jpg", PHOTO)).json()
    header, data = annotated["annotated"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (355, 512, 3)


def test_predict_error_codes(client, tmp_path):
    cat = client.post("/v1/predict", files=upload("cat.bmp", (TESTDATA / "cat.bmp").read_bytes()))
    assert cat.status_code == 200 and cat.json()["faces"] == []
    text = client.post("/v1/predict", files=upload("x.jpg", b"just some text", "image/jpeg"))
    assert text.status_code == 415
    truncated = client.post("/v1/predict", files=upload("t.jpg", PHOTO[:400], "image/jpeg"))
    assert truncated.status_code == 422
    assert truncated.json()["detail"] == ("not a readable image (corrupt, truncated or not an "
                                          "image file)")
    bomb = write_png_bomb(tmp_path / "bomb.png", side=10240).read_bytes()  # 105 MP, 100 kB
    refused = client.post("/v1/predict", files=upload("bomb.png", bomb, "image/png"))
    assert refused.status_code == 422 and "image too large (10240x10240 = 105 MP" in refused.json()["detail"]
    empty = client.post("/v1/predict", files=upload("e.jpg", b""))
    assert empty.status_code == 422
    missing = client.post("/v1/predict")
    assert missing.status_code == 422
    for response in (text, truncated, refused, empty, missing):
        assert "Traceback" not in response.text


def test_upload_limits_give_413(tmp_path):
    settings = ServerSettings(data_dir=tmp_path, max_image_bytes=50_000, max_video_bytes=50_000)
    with TestClient(create_app(settings)) as client:
        photo = client.post("/v1/predict", files=upload("face.jpg", PHOTO))  # 72 kB > 50 kB
        assert photo.status_code == 413
        huge = client.post("/v1/predict", files=upload("big.jpg", PHOTO * 20))  # > body limit
        assert huge.status_code == 413
        video = client.post("/v1/jobs", files=upload("v.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 60_000))
        assert video.status_code == 413


def test_video_job_end_to_end(client, lecture):
    job, job_id = lecture, lecture["id"]
    assert job["status"] == "done" and job["error"] is None
    assert job["progress"]["frames_done"] == job["progress"]["frames_total"] == 20
    summary = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert summary["frames"] == 20 and len(summary["faces"]) >= 4
    assert {"emotion_shares", "mean_scores", "dominant", "person_id"} <= set(summary["faces"][0])
    csv_text = client.get(f"/v1/jobs/{job_id}/faces.csv").text
    assert csv_text.startswith("source,frame,time,face,track_id")
    assert len(csv_text.splitlines()) - 1 == sum(f["frames"] for f in summary["faces"])
    timeline = client.get(f"/v1/jobs/{job_id}/timeline.png")
    assert timeline.headers["content-type"] == "image/png" and timeline.content[:4] == b"\x89PNG"
    video = client.get(f"/v1/jobs/{job_id}/video")
    assert video.headers["content-type"] == "video/webm" and video.content[:4] == b"\x1a\x45\xdf\xa3"
    assert job_id in [j["id"] for j in client.get("/v1/jobs").json()]


def test_a_deleted_job_is_gone_with_its_files(client, clip):
    job_id = client.post("/v1/jobs?annotate=false&every=5", files=upload("short.mp4", clip)).json()["id"]
    assert wait_for(client, job_id)["status"] == "done"
    root = client.app.state.store.files(job_id).root
    assert root.is_dir()
    assert client.get("/v1/jobs?limit=1").json()[0]["id"] == job_id  # newest first
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/summary").status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 404
    assert not root.exists()


def test_job_errors(client):
    not_video = client.post("/v1/jobs", files=upload("x.mp4", b"hello, not a video at all"))
    assert not_video.status_code == 415
    corrupt = client.post("/v1/jobs", files=upload("c.mp4", b"\0\0\0\x18ftypmp42" + b"\x01" * 5000))
    assert corrupt.status_code == 202
    job = wait_for(client, corrupt.json()["id"])
    assert job["status"] == "failed" and "cannot open the video" in job["error"]
    assert client.get(f"/v1/jobs/{job['id']}/summary").status_code == 409
    for bad in ("../../etc/passwd", "..%2F..%2Fjobs.sqlite", "0" * 31 + "g"):
        assert client.get(f"/v1/jobs/{bad}").status_code == 404
        assert client.get(f"/v1/jobs/{bad}/faces.csv").status_code == 404


def test_too_many_queued_jobs_give_429_and_queued_jobs_survive_a_restart(tmp_path, clip):
    settings = ServerSettings(data_dir=tmp_path, max_queued_jobs=1)
    stopped = TestClient(create_app(settings))  # no lifespan: nothing runs the queue
    first = stopped.post("/v1/jobs?annotate=false&every=5", files=upload("a.mp4", clip)).json()
    second = stopped.post("/v1/jobs", files=upload("b.mp4", clip))
    assert second.status_code == 429 and second.headers["retry-after"] == "30"
    assert stopped.get(f"/v1/jobs/{first['id']}").json()["status"] == "queued"
    assert stopped.get(f"/v1/jobs/{first['id']}/video").status_code == 409
    # a job the previous server was running when it died is queued again
    from emotrace.server.jobs import JobStore
    interrupted = stopped.post("/v1/jobs", files=upload("c.mp4", clip))  # 429: queue full
    assert interrupted.status_code == 429
    store = JobStore(tmp_path)
    store.update(first["id"], status="running", attempts=1)
    with TestClient(create_app(settings)) as restarted:
        job = wait_for(restarted, first["id"])
        assert job["status"] == "done" and "ran again" in job["warning"]


def test_retention_removes_old_finished_jobs(tmp_path, clip):
    from emotrace.server.jobs import JobStore

    store = JobStore(tmp_path)
    job_id, path = store.reserve("old.mp4", ".mp4", 10)
    path.write_bytes(clip)
    store.update(job_id, status="done")  # just finished: kept
    assert store.prune(max_age_s=3600, max_bytes=10 ** 12) == []
    assert store.prune(max_age_s=3600, max_bytes=1) == [job_id]  # over the size budget
    assert not store.files(job_id).root.exists()


def test_token_auth(guarded):
    client = guarded
    assert client.get("/health").status_code == 200
    for method, path in (("post", "/v1/predict"), ("get", "/v1/jobs"), ("post", "/v1/jobs"),
                         ("get", "/v1/jobs/" + "0" * 32)):
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/v1/jobs", headers={"Authorization": "Bearer nope-nope"})
    assert wrong.status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.post("/v1/predict", files=upload("face.jpg", PHOTO), headers=good)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 4
    with pytest.raises(Exception):
        with client.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
    with client.websocket_connect(f"/v1/stream?token={TOKEN}") as ws:
        ws.send_bytes(PHOTO)
        assert len(ws.receive_json()["faces"]) == 4
    assert "access-control-allow-origin" not in client.get(
        "/health", headers={"Origin": "http://evil.example"}).headers


def test_websocket_keeps_track_ids_and_survives_bad_frames(client):
    with client.websocket_connect("/v1/stream") as ws:
        answers = []
        for shift in (0, 2, 4):
            image = cv2.imread(str(TESTDATA / "face.jpg"))
            image = np.roll(image, shift, axis=1)
            ws.send_bytes(cv2.imencode(".jpg", image)[1].tobytes())
            answers.append(ws.receive_json())
        ws.send_bytes(b"not a jpeg")
        assert "not a readable image" in ws.receive_json()["error"]
        ws.send_bytes(PHOTO)
        answers.append(ws.receive_json())
    ids = [sorted(f["track_id"] for f in a["faces"]) for a in answers]
    assert ids[0] == ids[1] == ids[2] == ids[3] and len(ids[0]) == 4
    assert [a["frame"] for a in answers] == [0, 1, 2, 3]
    assert answers[0]["width"] == 512 and answers[0]["height"] == 355


def test_internal_errors_never_show_a_traceback(client, monkeypatch):
    recognizer = client.app.state.pool.recognizer

    def broken(*args, **kwargs):
        raise RuntimeError("boom in a worker")

    monkeypatch.setattr(recognizer, "recognize", broken)
    response = TestClient(client.app, raise_server_exceptions=False).post(
        "/v1/predict", files=upload("face.jpg", PHOTO))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (logged on the server)"}
    assert "boom" not in response.text and "Traceback" not in response.text


def test_openapi_and_page_are_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/predict", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/summary",
            "/v1/jobs/{job_id}/faces.csv", "/v1/jobs/{job_id}/timeline.png",
            "/v1/jobs/{job_id}/video"} <= set(paths)
    assert client.get("/docs").status_code == 200
    page = client.get("/").text
    assert "<title>emotrace</title>" in page
    assert "://" not in page  # no CDN: every asset comes from this server
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and "https://" not in response.text


def test_results_name_the_upload_never_a_server_path(client, lecture):
    job_id = lecture["id"]
    summary = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert summary["source"] == "my lecture.mp4"
    rows = client.get(f"/v1/jobs/{job_id}/faces.csv").text.splitlines()[1:]
    assert rows and all(row.startswith("my lecture.mp4,") for row in rows)
    data_dir = str(client.app.state.settings.data_dir)
    for route in ("", "/summary", "/faces.csv"):
        assert data_dir not in client.get(f"/v1/jobs/{job_id}{route}").text


def test_odd_tokens_and_text_messages_are_refused_cleanly(guarded):
    client = guarded
    odd = client.get("/v1/jobs", headers={"Authorization": "Bearer s3crét-tökén".encode()})
    assert odd.status_code == 401
    with client.websocket_connect(f"/v1/stream?token={TOKEN}") as ws:
        ws.send_text("hello")
        assert "binary message" in ws.receive_json()["error"]
        ws.send_bytes(PHOTO)  # the connection still works
        assert len(ws.receive_json()["faces"]) == 4


def test_openapi_declares_the_answers_a_typed_client_reads(client, lecture):
    """POST /v1/predict and GET /v1/jobs/{id} declare their answers (errors included) as
    schemas, and the server's real answers are exactly what they declare."""
    import jsonschema

    doc = client.get("/openapi.json").json()

    def schema(path: str, method: str, code: str) -> dict:
        content = doc["paths"][path][method]["responses"][code]["content"]["application/json"]
        return {**content["schema"], "components": doc["components"]}

    def check(path: str, method: str, code: str, answer) -> None:
        declared = schema(path, method, code)
        jsonschema.Draft202012Validator(declared).validate(answer.json())
        resolved = declared
        while "$ref" in resolved:
            resolved = doc["components"]["schemas"][resolved["$ref"].rsplit("/", 1)[1]]
        required = resolved.get("required", [])  # a bare dict declares none
        assert required and set(required) <= set(answer.json()), f"{method} {path} {code}"

    photo = client.post("/v1/predict?annotate=true", files=upload("face.jpg", PHOTO))
    check("/v1/predict", "post", "200", photo)
    check("/v1/predict", "post", "200", client.post("/v1/predict", files=upload("cat.bmp", (
        TESTDATA / "cat.bmp").read_bytes())))
    check("/v1/predict", "post", "415", client.post("/v1/predict", files=upload("x.jpg", b"x")))
    check("/v1/predict", "post", "422", client.post("/v1/predict", files=upload("e.jpg", b"")))
    check("/v1/predict", "post", "422", client.post("/v1/predict"))  # FastAPI's field errors
    check("/v1/jobs/{job_id}", "get", "200", client.get(f"/v1/jobs/{lecture['id']}"))
    check("/v1/jobs/{job_id}", "get", "404", client.get("/v1/jobs/" + "0" * 32))
    for path, method, codes in (("/v1/predict", "post", {"401", "413", "415"}),
                                ("/v1/jobs/{job_id}", "get", {"401"}),
                                ("/v1/jobs", "post", {"202", "401", "413", "415", "429"}),
                                ("/v1/jobs", "get", {"200", "401"})):
        for code in codes:
            assert "$ref" in schema(path, method, code) or schema(path, method, code)["items"]
    # the declared faces are specific: a face without its scores is not a valid answer
    face = photo.json()["faces"][0]
    broken = {**photo.json(), "faces": [{k: v for k, v in face.items() if k != "scores"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema("/v1/predict", "post", "200")).validate(broken)


def test_settings_are_validated_in_one_place(monkeypatch, tmp_path):
    from emotrace.errors import ConfigError

    for values, message in (({"workers": 0}, "workers must be at least 1, got 0"),
                            ({"retention_days": -1}, "retention_days must be positive, got -1"),
                            ({"token": "short"}, "the token must be at least 8 characters long"),
                            ({"max_queued": 3}, "max_queued: no such server setting")):
        with pytest.raises(ConfigError) as refused:
            ServerSettings(data_dir=tmp_path, **values)
        assert str(refused.value) == message
    monkeypatch.setenv("EMOTRACE_MAX_QUEUED_JOBS", "3")
    monkeypatch.setenv("EMOTRACE_TOKEN", TOKEN)
    settings = ServerSettings(data_dir=tmp_path, cors_origins=("http://app.example/",))
    assert (settings.max_queued_jobs, settings.token) == (3, TOKEN)
    assert settings.cors_origins == ("http://app.example",)
    monkeypatch.setenv("EMOTRACE_WORKERS", "0")
    with pytest.raises(ConfigError, match="^workers must be at least 1, got 0$"):
        ServerSettings(data_dir=tmp_path)

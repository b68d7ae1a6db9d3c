"""The web page in a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser) against a real `emotrace serve`, with Chromium's fake camera fed a clip of real faces.
Screenshots of the three views go to a temporary folder, so a test run leaves the checkout
clean; refresh the README's pictures with
``EMOTRACE_SCREENSHOTS=docs/serve python -m pytest tests/integration/test_browser.py``."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")

from conftest import TESTDATA  # noqa: E402
from emotrace.testing import free_port, write_panning_video, write_y4m  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("EMOTRACE_SCREENSHOTS",
                                  Path(tempfile.gettempdir()) / "emotrace-screenshots"))

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (apt-get install chromium)")


TOKEN = "browser-token-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `emotrace serve --token` on a free port (one for the module: the page's requests
    carry the token, as a user's do once they entered it), stopped (SIGTERM, then kill)
    whatever happens."""
    port = free_port()
    data = tmp_path_factory.mktemp("serve-data")
    process = subprocess.Popen([sys.executable, "-m", "emotrace.cli.main", "serve", "--port",
                                str(port), "--data-dir", str(data), "--token", TOKEN],
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"emotrace serve did not start: {process.stderr.read()}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, "the server did not stop cleanly on SIGTERM"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    camera = write_y4m(TESTDATA / "face.jpg", tmp_path_factory.mktemp("cam") / "faces.y4m",
                       frames=60)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera}"],
            env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, server):
    """The page with the server's token entered (the page keeps it in localStorage)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"localStorage.setItem('emotrace-token', '{TOKEN}')")
    page = context.new_page()
    page.goto(server)
    yield page
    context.close()


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_photo_shows_four_annotated_faces(page):
    assert not page.locator("#photo-result").is_visible()  # no empty box before a photo
    page.set_input_files("#photo-file", str(TESTDATA / "face.jpg"))
    page.wait_for_selector("#photo-result[data-faces='4']", timeout=30_000)
    assert page.locator("#photo-faces tbody tr").count() == 4
    assert page.locator("#photo-image").evaluate("img => img.naturalWidth") == 512
    shoot(page, "photo.png")


def test_video_job_shows_progress_then_timeline_and_summary(page, tmp_path):
    video = write_panning_video(TESTDATA / "face.jpg", tmp_path / "lecture.mp4", frames=45, step=2)
    page.click("button[data-view='video']")
    page.set_input_files("#video-file", str(video))
    page.wait_for_selector("#job-result:not([hidden])", timeout=120_000)
    assert page.locator("#job-summary tbody tr").count() >= 4
    # each person's thumbnail, fetched from /v1/jobs/{id}/people/{person_id}.jpg
    page.wait_for_function("[...document.querySelectorAll('#job-summary img.thumb')]"
                           ".filter((img) => img.naturalWidth > 0).length >= 4", timeout=30_000)
    page.wait_for_function("document.getElementById('job-timeline').naturalWidth > 0")
    assert "Done: 45 frames" in page.locator("#job-status").inner_text()
    # downloads take the names the server gives its files
    assert [page.locator(f"#dl-{kind}").get_attribute("download") for kind in
            ("csv", "summary", "video")] == ["lecture.faces.csv", "lecture.summary.json",
                                             "lecture.annotated.webm"]
    assert "lecture.mp4 — done" in page.locator("#jobs").inner_text()
    page.reload()  # the job survives a reload
    page.click("button[data-view='video']")
    page.wait_for_selector("#job-result:not([hidden])", timeout=30_000)
    # the annotated WebM decodes in the browser (a frame is ready to show)
    page.wait_for_function("document.getElementById('job-video').readyState >= 2",
                           timeout=30_000)
    shoot(page, "video.png")


def test_webcam_shows_live_boxes(page):
    page.click("button[data-view='webcam']")
    page.click("#cam-start")
    page.wait_for_function("Number(document.getElementById('cam-overlay').dataset.faces) >= 2",
                           timeout=60_000)
    page.wait_for_timeout(4000)  # let the rate and the chart settle
    fps = float(page.locator("#cam-rate").get_attribute("data-fps"))
    print(f"webcam round trips: {fps:.1f} frames/s")
    assert fps > 0
    shoot(page, "webcam.png")
    page.click("#cam-stop")


def test_webcam_with_a_wrong_token_says_why(browser, server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server)
        page.fill("#token", "a-wrong-token")
        page.click("button[data-view='webcam']")
        page.click("#cam-start")
        page.wait_for_selector("#message:not([hidden])", timeout=30_000)
        assert "refused the webcam stream: missing or wrong token" in page.locator(
            "#message").inner_text()
        assert page.locator("#cam-start").is_enabled()
    finally:
        context.close()

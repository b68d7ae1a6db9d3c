// emotrace web page: photos (POST /v1/predict), videos (jobs), live webcam (WS /v1/stream).
"use strict";

const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const COLORS = { angry: "#dc2828", disgust: "#288c28", fear: "#a03ca0", happy: "#ffc800",
                 sad: "#2878c8", surprise: "#ff8c00", neutral: "#aaaaaa" };
const $ = (id) => document.getElementById(id);

// ---- shared -----------------------------------------------------------------------------
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("emotrace-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("emotrace-token", tokenInput.value));

function authHeaders() {
  return tokenInput.value ? { Authorization: `Bearer ${tokenInput.value}` } : {};
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    if (response.status === 401) detail += " (enter the server's access token at the top)";
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return response;
}

// Downloads and images that need the token are fetched and shown as blob URLs.
async function blobUrl(path) {
  return (await download(path)).url;
}

// A job's result file: its bytes, a blob URL, and the name the server gives it
// (Content-Disposition: the server names the files, the page does not).
async function download(path) {
  const response = await api(path);
  const header = response.headers.get("content-disposition") || "";
  const encoded = /filename\*=utf-8''([^;]+)/i.exec(header);
  const plain = /filename="([^"]*)"/i.exec(header);
  const blob = await response.blob();
  return { blob, url: URL.createObjectURL(blob),
           name: encoded ? decodeURIComponent(encoded[1]) : plain ? plain[1] : "" };
}

function fillTable(table, header, rows) {
  table.tHead.innerHTML = "<tr>" + header.map((h) => `<th>${h}</th>`).join("") + "</tr>";
  table.tBodies[0].innerHTML = rows.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("");
}

const duration = (s) => s < 90 ? `${Math.ceil(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
const percent = (x) => `${Math.round(x * 100)}%`;
const bar = (name, x) => `<span class="bar" style="width:${Math.round(x * 60)}px;background:${COLORS[name]}"></span> ${percent(x)}`;

function setupDrop(label, input, onFile) {
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  label.addEventListener("dragover", (e) => { e.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (e) => {
    e.preventDefault();
    label.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
}

document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== tab.dataset.view; });
  showMessage("");
  if (tab.dataset.view === "video") listJobs();
}));

// Upload a dropped file to `path`; `show` gets the JSON answer, errors go to the message box.
function uploadOnDrop(label, input, path, show) {
  setupDrop(label, input, async (file) => {
    showMessage("");
    const form = new FormData();
    form.append("file", file);
    try {
      const target = typeof path === "function" ? path() : path;
      show(await (await api(target, { method: "POST", body: form })).json());
    } catch (error) { showMessage(`${file.name}: ${error.message}`); }
  });
}

// ---- photo ------------------------------------------------------------------------------
uploadOnDrop($("photo-drop"), $("photo-file"), "/v1/predict?annotate=true", (result) => {
  $("photo-image").src = result.annotated;
  fillTable($("photo-faces"), ["face", "emotion", ...EMOTIONS],
    result.faces.map((f, i) => [`#${i + 1}`, `${f.emotion} ${percent(f.scores[f.emotion])}`,
      ...EMOTIONS.map((e) => percent(f.scores[e]))]));
  $("photo-result").hidden = false;
  $("photo-result").dataset.faces = String(result.faces.length);
  if (!result.faces.length) showMessage("No face found in this photo.");
  else if (result.warning) showMessage(result.warning);
});

// ---- video jobs -------------------------------------------------------------------------
function jobPath() {  // the job options chosen above the drop zone, as query parameters
  const query = new URLSearchParams({ annotate: $("opt-annotate").checked, every: $("opt-every").value });
  if ($("opt-model").value) query.set("model", $("opt-model").value);
  return `/v1/jobs?${query}`;
}

uploadOnDrop($("video-drop"), $("video-file"), jobPath, (job) => {
  localStorage.setItem("emotrace-job", job.id);
  followJob(job.id);
  listJobs();
});

let following = null;
async function followJob(id) {
  following = id;
  $("job").hidden = false;
  $("job-result").hidden = true;
  while (following === id) {
    let job;
    try { job = await (await api(`/v1/jobs/${id}`)).json(); } catch (error) { showMessage(error.message); return; }
    const p = job.progress;
    $("job-title").textContent = job.filename;
    $("job-progress").max = p.frames_total || 1;
    $("job-progress").value = job.status === "done" ? $("job-progress").max : p.frames_done;
    $("job-status").textContent = {
      queued: "Queued…",
      running: `Analysing: frame ${p.frames_done}${p.frames_total ? " of " + p.frames_total : ""}${p.fps ? `, ${p.fps} frames/s` : ""}${p.eta_s != null ? `, about ${duration(p.eta_s)} left` : ""}`,
      done: `Done: ${p.frames_done} frames${job.warning ? " (" + job.warning + ")" : ""}.`,
      failed: `Failed: ${job.error}`,
    }[job.status];
    if (job.status === "done") { await showJob(job); listJobs(); return; }
    if (job.status === "failed") { listJobs(); return; }
    await new Promise((r) => setTimeout(r, 700));
  }
}

async function showJob(job) {
  const base = `/v1/jobs/${job.id}`;
  const summaryFile = await download(`${base}/summary`);
  const summary = JSON.parse(await summaryFile.blob.text());
  $("job-timeline").src = await blobUrl(`${base}/timeline.png`);
  const annotated = job.options ? job.options.annotate : true;
  $("job-video-box").hidden = $("dl-video-item").hidden = !annotated;
  $("job-video").removeAttribute("src");
  const files = { "dl-csv": await download(`${base}/faces.csv`), "dl-summary": summaryFile };
  if (annotated) files["dl-video"] = await download(`${base}/video`);
  if (annotated) $("job-video").src = files["dl-video"].url;
  for (const [id, file] of Object.entries(files)) { $(id).href = file.url; $(id).download = file.name; }
  const people = summary.faces.filter((f) => f.frames >= 3);
  // thumbnails need the token too: fetched, then shown as blob URLs
  const thumbs = await Promise.all(people.map((f) => (f.thumbnail && f.person_id
    ? blobUrl(`${base}/people/${f.person_id}.jpg`).catch(() => null) : null)));
  const withThumbs = thumbs.some((t) => t);
  fillTable($("job-summary"), [...(withThumbs ? [""] : []), "person", "seconds", "mostly", ...EMOTIONS],
    people.map((f, i) => [
      ...(withThumbs ? [thumbs[i] ? `<img class="thumb" src="${thumbs[i]}" alt="person #${f.person_id}">` : ""] : []),
      f.person_id ? `#${f.person_id}` : "face", `${f.first_time.toFixed(1)}–${f.last_time.toFixed(1)}`,
      f.dominant, ...EMOTIONS.map((e) => bar(e, f.emotion_shares[e]))]));
  $("job-result").hidden = false;
}

async function listJobs() {
  try {
    const jobs = await (await api("/v1/jobs")).json();
    $("jobs").innerHTML = "";
    for (const job of jobs) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#";
      link.textContent = `${job.filename} — ${job.status}`;
      link.addEventListener("click", (e) => { e.preventDefault(); followJob(job.id); });
      item.append(link, ` (${new Date(job.created * 1000).toLocaleString()})`);
      $("jobs").append(item);
    }
  } catch (error) { showMessage(error.message); }
}

// A job survives a reload: the last one is followed again.
if (localStorage.getItem("emotrace-job")) followJob(localStorage.getItem("emotrace-job"));

// ---- webcam -----------------------------------------------------------------------------
const cam = { stream: null, socket: null, shares: new Map(), frames: 0, since: 0 };

$("cam-start").addEventListener("click", async () => {
  showMessage("");
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) { showMessage(`Cannot open the webcam: ${error.message}`); return; }
  const video = $("cam-video");
  video.srcObject = cam.stream;
  await video.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = tokenInput.value ? `?token=${encodeURIComponent(tokenInput.value)}` : "";
  cam.socket = new WebSocket(`${scheme}://${location.host}/v1/stream${token}`);
  cam.socket.binaryType = "arraybuffer";
  cam.socket.onmessage = (event) => { drawFaces(JSON.parse(event.data)); sendFrame(); };
  let opened = false;
  cam.socket.onopen = () => { opened = true; cam.frames = 0; cam.since = performance.now(); sendFrame(); };
  cam.socket.onclose = (event) => {
    if (cam.socket !== null) {  // closed by the server or the network, not by "Stop"
      if (event.code === 1008) showMessage(`The server refused the webcam stream: ${event.reason || "enter the access token at the top"}.`);
      else if (!opened) showMessage("Cannot connect to the server's webcam stream (is the server running, and is this page served by it?).");
      else if (event.code !== 1000) showMessage(`The webcam stream was closed (code ${event.code}${event.reason ? ": " + event.reason : ""}).`);
    }
    stopCam();
  };
  $("cam-start").disabled = true;
  $("cam-stop").disabled = false;
});
$("cam-stop").addEventListener("click", stopCam);

const grab = document.createElement("canvas");
function sendFrame() {  // one frame in flight: the next one leaves when the answer came back
  const video = $("cam-video");
  if (!cam.socket || cam.socket.readyState !== WebSocket.OPEN) return;
  grab.width = video.videoWidth; grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  grab.toBlob((blob) => blob && blob.arrayBuffer().then((b) => cam.socket && cam.socket.readyState === WebSocket.OPEN && cam.socket.send(b)),
    "image/jpeg", 0.8);
}

function drawFaces(answer) {
  const overlay = $("cam-overlay");
  if (answer.error) { showMessage(answer.error); return; }
  overlay.width = answer.width; overlay.height = answer.height;
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, overlay.width, overlay.height);
  g.lineWidth = 3; g.font = "16px system-ui";
  for (const face of answer.faces) {
    const [x, y, w, h] = face.box;
    const label = `#${face.track_id} ${face.emotion} ${percent(face.scores[face.emotion])}`;
    g.strokeStyle = g.fillStyle = COLORS[face.emotion];
    g.strokeRect(x, y, w, h);
    g.fillRect(x, y - 20, g.measureText(label).width + 8, 20);
    g.fillStyle = "#000"; g.fillText(label, x + 4, y - 5);
    const counts = cam.shares.get(face.track_id) || Object.fromEntries(EMOTIONS.map((e) => [e, 0]));
    counts[face.emotion] += 1;
    cam.shares.set(face.track_id, counts);
  }
  overlay.dataset.faces = String(answer.faces.length);
  cam.frames += 1;
  const rate = cam.frames / ((performance.now() - cam.since) / 1000);
  $("cam-rate").textContent = `${rate.toFixed(1)} frames/s`;
  $("cam-rate").dataset.fps = rate.toFixed(2);
  drawChart();
}

function drawChart() {  // one stacked bar per person: share of frames per emotion so far
  const chart = $("cam-chart");
  const g = chart.getContext("2d");
  g.clearRect(0, 0, chart.width, chart.height);
  const people = [...cam.shares.entries()].sort((a, b) => a[0] - b[0]).slice(-8);
  const rowH = Math.min(24, (chart.height - 30) / Math.max(people.length, 1));
  g.font = "13px system-ui";
  people.forEach(([id, counts], row) => {
    const total = EMOTIONS.reduce((s, e) => s + counts[e], 0);
    let x = 60;
    g.fillStyle = "#1d2430"; g.fillText(`#${id}`, 10, 18 + row * rowH + rowH / 2);
    for (const e of EMOTIONS) {
      const w = (chart.width - 80) * counts[e] / total;
      g.fillStyle = COLORS[e]; g.fillRect(x, 8 + row * rowH, w, rowH - 4); x += w;
    }
  });
  let x = 60;
  for (const e of EMOTIONS) {
    g.fillStyle = COLORS[e]; g.fillRect(x, chart.height - 16, 10, 10);
    g.fillStyle = "#1d2430"; g.fillText(e, x + 14, chart.height - 7); x += 90;
  }
}

function stopCam() {
  if (cam.socket) { const s = cam.socket; cam.socket = null; s.close(); }
  if (cam.stream) { cam.stream.getTracks().forEach((t) => t.stop()); cam.stream = null; }
  $("cam-start").disabled = false;
  $("cam-stop").disabled = true;
}

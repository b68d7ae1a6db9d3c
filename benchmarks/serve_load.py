"""Load on the HTTP service: N concurrent clients posting a photo with 4 faces to
`emotrace serve` on 127.0.0.1, for a fixed time (and a bounded number of requests).

    python benchmarks/serve_load.py [--clients 50] [--seconds 60] [--photo ../shared/testdata/face.jpg]

Prints requests/s, p50/p95/p99 latency, errors and the server's peak RSS, and, in the same run,
the per-photo time of the CLI (`emotrace predict` over 100 copies of the photo, and one photo per
process) for comparison. Loopback only. The load generator (one asyncio process) shares the
machine's cores with the server: on 2 cores it is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx

from emotrace.testing import free_port

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MAX_REQUESTS = 200_000


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


async def load(url: str, photo: bytes, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def one_client() -> None:
            while time.perf_counter() < deadline and len(latencies) + len(errors) < MAX_REQUESTS:
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/predict",
                                                 files={"file": ("face.jpg", photo, "image/jpeg")})
                    faces = len(response.json().get("faces", [])) if response.is_success else -1
                    if response.status_code != 200 or faces != 4:
                        errors.append(f"{response.status_code} faces={faces}")
                        continue
                except Exception as error:  # noqa: BLE001 - every failure counts as an error
                    errors.append(type(error).__name__)
                    continue
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, errors


def cli_per_photo(photo: Path) -> tuple[float, float]:
    """Seconds per photo of `emotrace predict`: over a folder of 100 copies, and one per process."""
    with tempfile.TemporaryDirectory() as folder:
        for i in range(100):
            shutil.copy(photo, Path(folder) / f"{i:03d}.jpg")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emotrace.cli.main", "predict", folder, "--json"],
                       check=True, capture_output=True)
        batch = (time.perf_counter() - start) / 100
    start = time.perf_counter()
    for _ in range(3):
        subprocess.run([sys.executable, "-m", "emotrace.cli.main", "predict", str(photo)],
                       check=True, capture_output=True)
    return batch, (time.perf_counter() - start) / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--photo", type=Path, default=SHARED / "testdata" / "face.jpg")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "emotrace.cli.main", "serve", "--port",
                                   str(port), "--data-dir", data], stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            started = time.perf_counter()
            latencies, errors = asyncio.run(load(url, args.photo.read_bytes(), args.clients,
                                                 args.seconds))
            elapsed = time.perf_counter() - started
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    batch, single = cli_per_photo(args.photo)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    print(f"clients {args.clients}, {elapsed:.0f} s, photo {args.photo.name} (4 faces)")
    print(f"requests ok {len(latencies)}, errors {len(errors)}"
          + (f" (first: {errors[:3]})" if errors else ""))
    print(f"throughput {len(latencies) / elapsed:.1f} requests/s = {1000 * elapsed / max(len(latencies), 1):.1f} ms of server per photo")
    print(f"latency p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
    print(f"server peak RSS {rss:.0f} MB")
    print(f"CLI in the same run: {batch * 1000:.1f} ms per photo over a folder of 100, "
          f"{single * 1000:.0f} ms for one photo per process (start-up included)")


if __name__ == "__main__":
    main()

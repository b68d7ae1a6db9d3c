"""``emotrace predict --ray``: the same pipeline, with its work spread over a Ray cluster.

Images go through Ray Data ``map_batches`` with a callable class (each actor loads the model
once; actors take a fraction of a CPU, so Ray Data's own tasks always find room, see
ray-project/ray#44687). Each video is one Ray task that runs the in-process pipeline on the node
and writes its annotated video, summary and timeline itself (``--save`` must then be a folder
every node can reach; on one machine it always is). The driver walks the sources in their
original order and hands every result to the same sinks as a local run, so the JSON lines, the
CSV, the files and the exit code are the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from emotrace.config import RecognizerConfig
from emotrace.errors import EmotraceError
from emotrace.inference.recognizer import Recognizer
from emotrace.inference.results import Face, Result
from emotrace.inference.sinks import AnnotatedSink, Sink, Sinks
from emotrace.inference.sources import (ExpandedSources, NamedSource, SourceError, SourceInfo,
                                        expand_sources, is_live_source, is_video_source)
from emotrace.utils import describe_os_error

#: CPUs an image actor asks for: two actors per core leave room for Ray Data's read tasks.
ACTOR_CPUS = 0.5
IMAGE_BATCH = 16


def build_recognizer(config: RecognizerConfig) -> Recognizer:
    """The driver's Recognizer on a worker, with one onnxruntime thread: Ray gives each actor or
    task its share of a node's cores."""
    return Recognizer(config=config.replace(threads=1))


def _refuse_silent_address(address: str | None, timeout_s: float = 5.0) -> None:
    """A ``HOST:PORT`` where nothing answers is refused at once: Ray itself retries for minutes
    and does not stop on Ctrl-C meanwhile (measured: 83 s, and ``timeout 60`` did not end it)."""
    host, colon, port = (address or "").rpartition(":")
    if not colon or not port.isdigit() or "://" in host:  # auto, ray://: Ray says what is wrong
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                 timeout=timeout_s).close()
    except OSError as error:
        raise EmotraceError(f"--ray {address}: nothing answers there ({describe_os_error(error)});"
                            f" give the HOST:PORT of a running cluster's head node (started with "
                            f"'ray start --head --port {port}'), or --ray alone for a local Ray"
                            ) from None


@contextlib.contextmanager
def ray_cluster(address: str | None, cpus: int | None = None) -> Iterator[Any]:
    """Join ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or start a local Ray for
    the run (with ``cpus`` CPUs, default all) and stop it after."""
    _refuse_silent_address(address)
    import ray
    import ray.data  # configures its loggers on import: quieten them after

    for name in ("ray", "ray.data", "ray.tune", "ray.train"):  # our stderr names our sources
        logging.getLogger(name).setLevel(logging.ERROR)
        for handler in logging.getLogger(name).handlers:
            handler.setLevel(logging.ERROR)

    try:
        ray.init(address=address or "local", num_cpus=None if address else cpus,
                 include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False,
                 # workers keep the driver's working folder (Tune would move trials to their own)
                 runtime_env={"env_vars": {"ORT_DISABLE_TELEMETRY": "1",
                                           "RAY_CHDIR_TO_TRIAL_DIR": "0"}})
    except ConnectionError as error:  # a wrong address, a stopped cluster, a missing token
        reason = str(error).splitlines()[0]
        raise EmotraceError(f"--ray {address}: cannot join the Ray cluster ({reason}); check "
                            "the address (HOST:PORT of its head node) and, on a cluster with "
                            "token authentication, RAY_AUTH_MODE=token and RAY_AUTH_TOKEN") from None
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # results in source order
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        yield ray
    finally:
        ray.shutdown()


class ImagePredictor:
    """A Ray Data actor: the model is loaded once, then batches of image paths are recognised."""

    def __init__(self, config: RecognizerConfig, keep_images: bool) -> None:
        self.recognizer = build_recognizer(config)
        self.keep_images = keep_images

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        results = [next(self.recognizer.run([NamedSource(str(path), str(name))]))
                   for path, name in zip(batch["path"], batch["name"])]
        node = ray.get_runtime_context().get_node_id()
        return {"index": batch["index"],
                "result": np.array([_pack(r, self.keep_images) for r in results], dtype=object),
                "node": np.array([node] * len(results), dtype=object)}


def run_video(config: RecognizerConfig, source: str | NamedSource, every: int,
              save: dict[str, str] | None) -> tuple[SourceInfo | None, list[dict[str, Any]], list[str], str]:
    """One video on one node: its results (without pixels), the files it wrote, the node id."""
    import ray

    recognizer = build_recognizer(config)
    sinks: list[Sink] = []
    info: list[SourceInfo] = []

    class _Info(Sink):
        def start(self, source_info: SourceInfo) -> None:
            info.append(source_info)

    with contextlib.ExitStack() as stack:
        if save is not None:
            sinks.append(stack.enter_context(AnnotatedSink(save["dir"], names=save["names"])))
        sinks.append(_Info())
        results = [_pack(r, keep_image=False) for r in recognizer.run([source], every, sinks)]
    written = [str(p) for s in sinks for p in s.written]
    return (info[0] if info else None), results, written, ray.get_runtime_context().get_node_id()


def _pack(result: Result, keep_image: bool) -> dict[str, Any]:
    data = asdict(result)
    data["faces"] = [asdict(face) for face in result.faces]
    if not keep_image:
        data["image"] = None
    return data


def _unpack(data: dict[str, Any]) -> Result:
    faces = [Face(**{**face, "box": tuple(face["box"])}) for face in data["faces"]]
    return Result(**{**data, "faces": faces})


def predict_on_ray(config: RecognizerConfig, sources: object, every: int = 1,
                   sinks: Sequence[Sink] = (), address: str | None = None,
                   nodes: set[str] | None = None, workers: int | None = None
                   ) -> Iterator[Result]:
    """Like :meth:`Recognizer.run`, with the work done by a Ray cluster. ``nodes`` collects the
    ids of the nodes that did work; ``workers`` caps the image actors (and is the CPU count of
    a local Ray)."""
    items: ExpandedSources = expand_sources(sources)
    nodes = nodes if nodes is not None else set()
    annotated = next((s for s in sinks if isinstance(s, AnnotatedSink)), None)
    with ray_cluster(address, workers) as ray:
        image_results = _image_results(ray, config, items, annotated is not None, nodes, workers)
        video_tasks = _launch_videos(ray, config, items, every, annotated)
        for index, item in enumerate(items):
            if isinstance(item, SourceError):
                yield Sinks(sinks).write(Result(item.source, error=item.message))
            elif index in video_tasks:
                info, packed, written, node = ray.get(video_tasks[index])
                nodes.add(node)
                if annotated is not None:
                    annotated.adopt(written)
                yield from _replay(info, [_unpack(r) for r in packed], sinks, str(item))
            else:
                result = next(image_results)
                info = SourceInfo(result.source, "image", 0, 0)
                yield from _replay(info if result.ok else None, [result], sinks, str(item))
        for _ in image_results:  # finish Ray Data's iterator while the cluster is still up
            pass


def _image_results(ray, config: RecognizerConfig, items: ExpandedSources, keep_images: bool,
                   nodes: set[str], workers: int | None) -> Iterator[Result]:
    rows = [{"index": i, "path": os.path.abspath(str(item)), "name": str(item)}
            for i, item in enumerate(items)
            if not isinstance(item, SourceError) and not is_video_source(item)]
    if not rows:
        return iter(())
    cpus = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    dataset = ray.data.from_items(rows).map_batches(
        ImagePredictor, fn_constructor_args=(config, keep_images), batch_size=IMAGE_BATCH,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cpus), num_cpus=ACTOR_CPUS,
        batch_format="numpy")

    def results() -> Iterator[Result]:
        for row in dataset.iter_rows():
            nodes.add(row["node"])
            yield _unpack(row["result"])
    return results()


def _launch_videos(ray, config: RecognizerConfig, items: ExpandedSources, every: int,
                   annotated: AnnotatedSink | None) -> dict[int, Any]:
    task = ray.remote(num_cpus=1, max_retries=1)(run_video)
    launched = {}
    for index, item in enumerate(items):
        if isinstance(item, SourceError) or not is_video_source(item):
            continue
        save = None
        if annotated is not None:  # the same file names a local run would choose
            name = annotated.reserve(str(item))
            save = {"dir": os.path.abspath(annotated.out_dir), "names": {str(item): name}}
        launched[index] = task.remote(config, on_node(item), every, save)
    return launched


def on_node(item: object) -> object:
    """A source as a node reads it: a file by its absolute path on the driver (nodes run in
    other folders), reported under the name the user gave; URLs and cameras as they are."""
    if is_live_source(item) or isinstance(item, NamedSource):
        return item
    return NamedSource(os.path.abspath(str(item)), str(item))


def _replay(info: SourceInfo | None, results: list[Result], sinks: Sequence[Sink],
            source: str) -> Iterator[Result]:
    """Hand a source's results to the sinks exactly as the in-process pipeline does."""
    fan_out = Sinks(sinks)
    if info is not None:
        fan_out.start(info)
    for result in results:
        yield fan_out.write(result)
    if info is not None:
        fan_out.end(info)

"""`--engine ray`: Ray Data over an actor pool, on this machine or a cluster (`--address`, RAY_ADDRESS).

Each actor loads the model once and answers chunks of paths with the same `Answerer` as the local
engine, so both give the same answers. The model file travels to the actors as bytes (every node
gets the very model the driver hashed); the images are read by the actors, so on a cluster the paths
must be reachable from every node: a shared file system or URIs of an object store.

Resources come from the cluster itself: each actor asks for 1 CPU (it runs onnxruntime and OpenCV
on one thread), or less when the smallest node has less, and there are as many actors as fit on the
nodes Ray reports. An actor that asks for more CPUs than any node has waits forever, so nothing here
asks for more than the smallest node has.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from digitrec.doubt import DEFAULT_MIN_CONFIDENCE
from digitrec.errors import DigitrecError

CHUNK = 64  # paths per actor call, as the local engine
REACH_SECONDS = 5.0  # how long to wait for a cluster's head to answer before calling it unreachable


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra, not only the core
    except ImportError:
        from digitrec.extras import install_command

        raise DigitrecError(f"--engine ray needs Ray Data: {install_command('ray')}") from None
    return ray


def check_reachable(address: str, seconds: float = REACH_SECONDS) -> None:
    """Raise DigitrecError when `address` ('host:port', 'ray://host:port', or 'auto': the cluster
    this machine last started) does not accept a connection within `seconds` (once its name is
    looked up). Ray itself retries an unreachable head for ever, and ignores Ctrl+C while it does,
    so a mistyped address, or 'auto' after a head that died without `ray stop`, would hang the
    command. Forms Ray refuses at once (no cluster for 'auto', an unbracketed IPv6 address) are
    left to it."""
    shown = address
    if address == "auto":
        resolved = _last_cluster()
        if resolved is None:
            return
        address, shown = resolved, f"auto ({resolved}, the cluster this machine last started)"
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or "/" in target:
        return
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        raise DigitrecError(f"cannot reach Ray at {shown}: {exc.strerror or exc}") from None


def _last_cluster() -> str | None:
    """What Ray makes of 'auto' (RAY_ADDRESS, else the address file of the cluster this machine
    last started), or None when it finds none, which Ray reports at once by itself."""
    try:
        from ray._private.services import canonicalize_bootstrap_address  # Ray's own resolution

        resolved = canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - no cluster, or a Ray without this helper: Ray's own message follows
        return None
    return resolved


class _RayAnswerer:
    """The actor: model bytes -> a local file -> an Answerer; pyarrow batches of paths -> rows."""

    def __init__(self, model_ref: list, model_suffix: str, task: str, min_confidence: float, side: int | None):
        import tempfile

        import cv2
        import ray

        from digitrec.allocator import keep_freed_memory
        from digitrec.batch.answer import Answerer

        cv2.setNumThreads(1)  # each actor is one CPU's worth of work (see the module's docstring)
        keep_freed_memory()  # an actor prepares thousands of images: reuse their freed arrays

        self._dir = tempfile.TemporaryDirectory(prefix="digitrec-actor-")
        model = Path(self._dir.name) / f"model{model_suffix}"
        model.write_bytes(ray.get(model_ref[0]))
        self.answerer = Answerer(str(model), task, min_confidence, side)
        self.task = task

    def __call__(self, batch):
        import pyarrow as pa

        from digitrec.batch.sink import schema

        rows = self.answerer(batch.column("path").to_pylist())
        table_schema = schema(self.task)
        return pa.Table.from_pylist(rows, schema=table_schema.remove(table_schema.get_field_index("model")))


def actor_resources(node_cpus: list[float], workers: int | None) -> tuple[float, int]:
    """CPUs the alive nodes report -> (CPUs per actor, actors). One CPU each, or less where the
    smallest node has less (a Kubernetes pod limited to 500m): an actor asking for more than any
    node has would wait forever. A head started with num-cpus 0 takes no actor."""
    cpus = [c for c in node_cpus if c > 0]
    if not cpus:
        raise DigitrecError("the Ray cluster reports no CPUs for the actors; add worker nodes with num-cpus >= 1")
    per_actor = min(1.0, min(cpus))
    fits = sum(int(c / per_actor + 1e-9) for c in cpus)  # actors that can run at once
    return per_actor, max(1, min(workers or fits, fits))


def answer_ray(
    paths: list[str],
    *,
    model: str,
    task: str,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    side: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    chunk: int = CHUNK,
) -> Iterator[list[dict]]:
    """Paths -> lists of result rows (in no particular order). `address`: a running cluster
    ('auto', 'ray://head:10001', or RAY_ADDRESS); none starts Ray here with `workers` CPUs."""
    ray = require_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        try:
            if address:
                check_reachable(address)
                ray.init(address=address, **kwargs)
            else:
                from digitrec.batch.local import default_workers

                ray.init(num_cpus=workers or default_workers(), **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DigitrecError(f"cannot start or reach Ray{' at ' + address if address else ''}: {exc}") from None
    try:
        per_actor, actors = actor_resources(
            [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")], workers
        )
        actors = min(actors, -(-len(paths) // chunk))  # no actor without a chunk to answer
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own bar
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        model_path = Path(model)
        dataset = ray.data.from_items([{"path": p} for p in paths]).map_batches(
            _RayAnswerer,
            batch_size=chunk,
            batch_format="pyarrow",
            num_cpus=per_actor,
            compute=ray.data.ActorPoolStrategy(size=actors),
            # The model goes into the object store once; each actor fetches it from there.
            fn_constructor_kwargs={
                "model_ref": [ray.put(model_path.read_bytes())],
                "model_suffix": model_path.suffix,
                "task": task,
                "min_confidence": min_confidence,
                "side": side,
            },
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield batch.to_pylist()
    finally:
        if started_here:
            ray.shutdown()

"""How a stage's items are fanned out: over this machine's processes (local) or over a Ray cluster (ray).

A stage driver builds one executor per command with make_executor(execution) and calls
executor.map(function_or_class, items, desc=..., chunksize=...) where it called parallel.imap. A function must
be module-level and never raise (failures are results with a status). A class is built once per worker with no
arguments and then called on each item, so a worker loads its model once. Results come back as they finish, in
no particular order, under a progress bar; both executors give the same results for the same items, since the
stage code is the same and its outputs are sorted before writing. Ray is imported only when a RayExecutor starts.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import socket
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from tqdm import tqdm

from . import parallel
from .errors import GimgError
from .options import ExecutionOptions
from .registry import resolve

Target = Callable[[Any], Any] | type
# Each Ray worker owns one CPU: native libraries must not start threads of their own (as parallel's workers).
SINGLE_THREADED = {name: "1" for name in parallel.THREAD_VARIABLES}
_NO_RAY = "--executor ray needs Ray: pip install 'gimg[ray]' on every node"


class Executor(Protocol):
    """Fans items out to workers and yields their results as they finish."""

    @property
    def workers(self) -> int: ...

    def map(self, target: Target, items: Iterable[Any], *, desc: str, chunksize: int = 1) -> Iterator[Any]: ...

    def close(self) -> None: ...


class _PerProcess:
    """A picklable callable that builds one instance of a worker class per process, then calls it per item."""

    _instances: dict[type, Any] = {}

    def __init__(self, worker_class: type) -> None:
        self.worker_class = worker_class

    def __call__(self, item: Any) -> Any:
        instance = self._instances.get(self.worker_class)
        if instance is None:
            instance = self._instances[self.worker_class] = self.worker_class()
        return instance(item)


def as_function(target: Target) -> Callable[[Any], Any]:
    """The per-item callable for a function or a worker class."""
    return _PerProcess(target) if isinstance(target, type) else target


class LocalExecutor:
    """This machine's process pool (parallel.imap): spawn, one single-threaded worker per CPU."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = parallel.default_workers() if workers is None else workers

    @classmethod
    def from_options(cls, execution: ExecutionOptions) -> LocalExecutor:
        """A pool of execution.workers processes (default: one per CPU)."""
        return cls(execution.workers)

    def map(self, target: Target, items: Iterable[Any], *, desc: str, chunksize: int = 1) -> Iterator[Any]:
        """Apply target to every item over the pool, yielding results as they finish."""
        return parallel.imap(as_function(target), items, workers=self.workers, desc=desc, chunksize=chunksize)

    def close(self) -> None:
        """Nothing to release: each map has its own pool."""


class _RayBatch:
    """Ray Data's class-based UDF: built once per actor; applies the target to each pickled item of a batch.

    map subclasses it with the target as a class attribute, which travels with the class (no constructor
    arguments that Ray would have to keep in its object store for actor restarts).
    """

    target: Target

    def __init__(self) -> None:
        parallel.single_threaded()
        self.function = as_function(self.target)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results = [pickle.dumps(self.function(pickle.loads(item))) for item in batch["item"]]
        return {"result": np.array(results, dtype=object)}


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise GimgError at once when nothing answers at a HOST:PORT Ray address (ray.init would retry for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise GimgError(f"--ray-address {address!r} is not HOST:PORT or auto: give the one `ray start --head` printed")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise GimgError(f"no Ray cluster answers at {address} ({reason}): start one with `ray start --head`, "
                        "or fix --ray-address") from None


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise GimgError(_NO_RAY) from None
    return ray


class RayExecutor:
    """Ray Data map_batches over a fixed pool of actors, one per CPU of the cluster.

    address joins a running cluster (the address `ray start --head` printed; "auto": the one this node belongs
    to); without it a private local Ray starts with num_cpus CPUs (default: this machine's) and stops on
    close(). A Ray already initialised in this process (a notebook's) is used as it is, and left running.
    Making one checks, in a second, that Ray is installed and that something answers at address; Ray itself
    starts (seconds, and hundreds of MiB) only at the first map, so that a run with nothing to map never starts it.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        if importlib.util.find_spec("ray") is None:
            raise GimgError(_NO_RAY)
        if address is not None:
            check_reachable(address)
        self.address = address
        self.num_cpus = num_cpus
        self._started = False
        self._owned = False

    @classmethod
    def from_options(cls, execution: ExecutionOptions) -> RayExecutor:
        """Join execution.ray_address, or start a local Ray with execution.workers CPUs (default: all)."""
        return cls(execution.ray_address, execution.workers)

    def start(self) -> None:
        """Start or join Ray, once; map calls it."""
        if self._started:
            return
        ray = _ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
                "runtime_env": {"env_vars": SINGLE_THREADED},
            }
            if self.address is None:  # "local": never join a cluster that happens to run on this node
                options.update(address="local", num_cpus=self.num_cpus or parallel.default_workers())
            else:
                options.update(address=self.address)
            if self.address is None:  # Ray 2.60 turns token auth on for a new local Ray, and says so each time
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            try:
                ray.init(**options)
            except ConnectionError as error:
                message = (f"cannot join the Ray cluster at {self.address}: {error}; check --ray-address, and set "
                           "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN) here as on its nodes")
                raise GimgError(message) from None
            self._owned = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its per-dataset INFO and progress notices
        with warnings.catch_warnings():  # Ray Data's notices about its own deprecated defaults, which gimg never sets
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # gimg shows its own bar
        context.print_on_execution_start = False
        self._started = True

    @property
    def workers(self) -> int:
        """The CPUs of the cluster (a local one: num_cpus), one actor each; starts Ray if need be."""
        self.start()
        return max(1, int(_ray().cluster_resources().get("CPU", 1)))

    def map(self, target: Target, items: Iterable[Any], *, desc: str, chunksize: int = 1) -> Iterator[Any]:
        """Apply target to every item on the cluster's actors, chunksize items per batch; yield as they finish."""
        items = list(items)
        if not items:
            return
        self.start()
        ray = _ray()
        actors = min(self.workers, len(items))
        dataset = ray.data.from_items([{"item": pickle.dumps(item)} for item in items])
        udf = type(f"{desc.capitalize()}Batch", (_RayBatch,), {"target": staticmethod(target)})
        results = dataset.map_batches(
            udf,
            batch_size=max(1, chunksize),
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        bar = {"total": len(items), "desc": desc, "unit": "item", "leave": False, "disable": None}
        with tqdm(**bar) as progress:
            for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
                progress.update(len(batch["result"]))
                for result in batch["result"]:
                    yield pickle.loads(result)

    def close(self) -> None:
        """Leave Ray if this executor joined or started it (a local instance stops)."""
        if self._owned:
            _ray().shutdown()
        self._started = self._owned = False


def make_executor(execution: ExecutionOptions = ExecutionOptions()) -> Executor:
    """The executor execution.executor names (local or ray), configured by the other execution options.

    Build one per command and close() it when the command ends (a Ray this started stops then).
    """
    return resolve("executor", execution.executor)(execution)


@contextmanager
def executor_for(execution: ExecutionOptions, executor: Executor | None = None) -> Iterator[Executor]:
    """The executor given, as it is; or one made from execution, closed when the block ends.

    A stage driver takes `executor=None` and runs in `with executor_for(execution, executor) as executor:`, so
    that it works alone and that the pipeline can hand every stage the one executor it made (one Ray start).
    """
    if executor is not None:
        yield executor
        return
    made = make_executor(execution)
    try:
        yield made
    finally:
        made.close()

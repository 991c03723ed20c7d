"""The executors: a crop run through Ray (a real local Ray, 2 CPUs) gives exactly the local executor's records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gimg.classify import CropClassifier
from gimg.errors import GimgError
from gimg.executors import LocalExecutor, RayExecutor, make_executor
from gimg.faces import CropTask, crop_one
from gimg.options import ClassifyOptions, CropOptions

TESTS = Path(__file__).parent


class Counted:
    """A worker class: reports which process and which instance handled each item."""

    def __init__(self) -> None:
        self.instance = id(self)

    def __call__(self, value: int) -> tuple[int, int, int]:
        return os.getpid(), self.instance, value * value


def square(value: int) -> int:
    return value * value


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install -e '.[ray]'")
    with pytest.MonkeyPatch.context() as patch:
        # A local Ray's workers inherit this environment: they import this module's worker class by name.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        executor = RayExecutor(num_cpus=2)
        executor.start()
        yield executor
        executor.close()


def _images(fixtures: Path, folder: Path) -> list[Path]:
    """The scene photos, and six UTKFace faces padded to 400 px so the detector has context."""
    folder.mkdir()
    paths = sorted((fixtures / "scenes").glob("*.jpg"))
    for source in sorted((fixtures / "faces" / "images").glob("*.jpg"))[::8]:
        face = np.asarray(Image.open(source).convert("RGB"))
        path = folder / source.name
        Image.fromarray(np.pad(face, ((100, 100), (100, 100), (0, 0)), mode="edge")).save(path, quality=95)
        paths.append(path)
    return paths


def _crop(executor, images: list[Path], crop_dir: Path) -> tuple[list[str], dict[str, bytes]]:
    crop_dir.mkdir()
    hook = CropClassifier(ClassifyOptions())
    tasks = [CropTask("term", str(path), str(crop_dir), CropOptions(), hook) for path in images]
    records = list(executor.map(crop_one, tasks, desc="crop", chunksize=2))
    comparable = sorted(repr(record) for record in records)
    return comparable, {path.name: path.read_bytes() for path in crop_dir.iterdir()}


def test_a_crop_run_through_ray_gives_the_local_records_and_files(ray_executor, fixtures, tmp_path):
    images = _images(fixtures, tmp_path / "images")
    local, local_files = _crop(LocalExecutor(2), images, tmp_path / "crops")
    (tmp_path / "crops").rename(tmp_path / "local")
    ray, ray_files = _crop(ray_executor, images, tmp_path / "crops")
    assert len(local) == len(images)
    assert sum(repr_.count("'p_female'") for repr_ in local) >= 6, "faces were found and classified"
    assert ray == local
    assert ray_files == local_files and len(local_files) >= 6


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_worker_class_is_built_once_per_worker_and_every_item_comes_back(ray_executor, executor):
    chosen = LocalExecutor(2) if executor == "local" else ray_executor
    results = list(chosen.map(Counted, range(40), desc="test", chunksize=3))
    assert sorted(value for _, _, value in results) == [value * value for value in range(40)]
    instances: dict[int, set[int]] = {}
    for pid, instance, _ in results:
        instances.setdefault(pid, set()).add(instance)
    assert all(len(ids) == 1 for ids in instances.values()), instances
    assert os.getpid() not in instances, "the work ran in workers"


def test_functions_map_on_ray_too(ray_executor):
    assert sorted(ray_executor.map(square, range(25), desc="test", chunksize=4)) == [v * v for v in range(25)]
    assert list(ray_executor.map(square, [], desc="test")) == []


def test_executor_options_are_checked_in_one_line():
    assert isinstance(make_executor("local", workers=2), LocalExecutor)
    assert isinstance(make_executor("ray", ray_address="auto"), RayExecutor)
    with pytest.raises(GimgError, match="unknown executor 'dask': choose one of local, ray"):
        make_executor("dask")
    with pytest.raises(GimgError, match="--ray-address needs --executor ray"):
        make_executor("local", ray_address="127.0.0.1:6379")
    with pytest.raises(GimgError, match="at least 1"):
        make_executor("local", workers=0)


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", r"no Ray cluster answers at 127.0.0.1:1 \(.+\): start one with `ray start --head`"),
    ("headnode", "is not HOST:PORT"),
])
def test_a_wrong_ray_address_fails_at_once_in_one_line(address, message):
    with pytest.raises(GimgError, match=message):
        RayExecutor(address).start()

"""The executors: stage work run through Ray (a real local Ray, 2 CPUs) gives exactly the local executor's results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gimg.classify import ClassifyTask, CropClassifier, classify_one
from gimg.errors import GimgError, OptionError
from gimg.executors import LocalExecutor, RayExecutor, executor_for, make_executor
from gimg.faces import CropTask, crop_one
from gimg.options import ClassifyOptions, CropOptions, ExecutionOptions, StudyConfig
from gimg.studyfile import read_study

TESTS = Path(__file__).parent
EXECUTION_FLAGS = ("--executor", "--ray-address", "--busy", "--stale-after")


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
        executor = make_executor(ExecutionOptions(executor="ray", workers=2))
        assert isinstance(executor, RayExecutor)
        yield executor
        executor.close()


@pytest.fixture(scope="module")
def images(fixtures, tmp_path_factory) -> list[Path]:
    """The scene photos, and six UTKFace faces padded to 400 px so the detector has context."""
    folder = tmp_path_factory.mktemp("images")
    paths = sorted((fixtures / "scenes").glob("*.jpg"))
    for source in sorted((fixtures / "faces" / "images").glob("*.jpg"))[::8]:
        face = np.asarray(Image.open(source).convert("RGB"))
        path = folder / source.name
        Image.fromarray(np.pad(face, ((100, 100), (100, 100), (0, 0)), mode="edge")).save(path, quality=95)
        paths.append(path)
    return paths


def _crop(executor, images: list[Path], crop_dir: Path, options: CropOptions, hook) -> tuple[list, dict[str, bytes]]:
    """The crop records (in a fixed order) and every file written into a fresh crop_dir."""
    crop_dir.mkdir()
    tasks = [CropTask("term", str(path), str(crop_dir), options, hook) for path in images]
    records = sorted(executor.map(crop_one, tasks, desc="crop", chunksize=2), key=lambda record: record.image)
    return records, {path.name: path.read_bytes() for path in crop_dir.iterdir()}


@pytest.mark.parametrize("options, hook", [
    (CropOptions(), CropClassifier(ClassifyOptions())),
    (CropOptions(detector="hog", landmarks=True), None),
], ids=["fused crop+classify", "hog with landmarks"])
def test_a_crop_through_ray_gives_the_local_records_and_files(ray_executor, images, tmp_path, options, hook):
    local, local_files = _crop(LocalExecutor(2), images, tmp_path / "local", options, hook)
    ray, ray_files = _crop(ray_executor, images, tmp_path / "ray", options, hook)
    faces = [row for record in local for row in record.rows]
    assert len(local) == len(images) and len(faces) >= 6, "faces were found"
    if hook is not None:
        assert all(0 <= row["p_female"] <= 1 for row in faces) and not any(r.hook_error for r in local)
    if options.landmarks:
        assert sum(name.endswith(".txt") for name in local_files) == len(faces)
    assert ray == local
    assert ray_files == local_files


def test_a_classify_through_ray_gives_the_local_records(ray_executor, images, tmp_path):
    records, _ = _crop(LocalExecutor(2), images, tmp_path / "crops", CropOptions(), None)
    faces = [row for record in records for row in record.rows]
    tasks = [ClassifyTask("term", ClassifyOptions(), str(tmp_path / "crops"), faces[start : start + 3])
             for start in range(0, len(faces), 3)]
    local = sorted(LocalExecutor(2).map(classify_one, tasks, desc="classify"), key=repr)
    ray = sorted(ray_executor.map(classify_one, tasks, desc="classify"), key=repr)
    assert sum(len(record.rows) for record in local) == len(faces) >= 6 and not any(r.error for r in local)
    assert ray == local


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
    assert ray_executor.workers == 2
    assert sorted(ray_executor.map(square, range(25), desc="test", chunksize=4)) == [v * v for v in range(25)]
    assert list(ray_executor.map(square, [], desc="test")) == []


def test_the_executor_registry_builds_each_executor_from_the_options():
    local = make_executor(ExecutionOptions(workers=3))
    assert isinstance(local, LocalExecutor) and local.workers == 3
    joined = make_executor(ExecutionOptions(executor="ray", ray_address="auto", workers=2))
    assert isinstance(joined, RayExecutor) and (joined.address, joined.num_cpus) == ("auto", 2)


def test_executor_for_lends_a_given_executor_and_makes_one_otherwise(ray_executor):
    with executor_for(ExecutionOptions(), ray_executor) as lent:
        assert lent is ray_executor
    assert sorted(ray_executor.map(square, range(3), desc="test")) == [0, 1, 4], "a lent executor stays open"
    with executor_for(ExecutionOptions(workers=3)) as made:
        assert isinstance(made, LocalExecutor) and made.workers == 3


@pytest.mark.parametrize("values, message", [
    ({"executor": "dask"}, "unknown executor 'dask': choose one of local, ray"),
    ({"ray_address": "127.0.0.1:6379"}, "--ray-address needs --executor ray"),
    ({"busy": "queue"}, "unknown busy mode 'queue': choose one of wait, skip"),
    ({"stale_after": 1}, r"--stale-after must be at least 5 \(got 1\)"),
    ({"workers": 0}, r"--workers must be at least 1 \(got 0\)"),
])
def test_execution_options_are_checked_in_one_line(values, message):
    with pytest.raises(OptionError, match=message):
        ExecutionOptions(**values)


def test_a_study_file_sets_the_execution_options(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('[execution]\nexecutor = "ray"\nray_address = "auto"\nbusy = "skip"\nstale_after = 300\n')
    execution = StudyConfig.from_flat(read_study(study)).execution
    assert execution == ExecutionOptions(executor="ray", ray_address="auto", busy="skip", stale_after=300)


def test_execution_options_never_enter_the_settings():
    """Resume works across executors: a stage's *.settings.json does not depend on where it ran."""
    assert ExecutionOptions(workers=2, executor="ray", ray_address="auto", busy="skip", stale_after=30).settings() == {}


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", r"no Ray cluster answers at 127.0.0.1:1 \(.+\): start one with `ray start --head`"),
    ("headnode", "is not HOST:PORT"),
])
def test_a_wrong_ray_address_fails_at_once_in_one_line(address, message):
    with pytest.raises(GimgError, match=message):
        make_executor(ExecutionOptions(executor="ray", ray_address=address))


def test_ray_is_imported_only_when_a_ray_executor_starts():
    code = ("import sys; import gimg.cli; from gimg.executors import make_executor; "
            "from gimg.options import ExecutionOptions; make_executor(ExecutionOptions(executor='ray')); "
            "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["download", "crop", "classify", "evaluate", "pipeline", "demo"])
def test_every_command_with_execution_options_has_their_flags(gimg, command):
    code, out, _ = gimg(command, "--help")
    assert code == 0 and all(flag in out for flag in EXECUTION_FLAGS), out


def test_a_ray_address_without_the_ray_executor_exits_2_in_one_line(gimg, tmp_path):
    code, _, err = gimg("crop", "--out", tmp_path, "--ray-address", "127.0.0.1:6379")
    assert code == 2 and err.strip() == "gimg: error: --ray-address needs --executor ray"

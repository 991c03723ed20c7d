"""`gimg train` on a slice of the shared UTKFace faces, judged on other faces it never saw (needs ../shared)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")

import numpy as np
import onnx
import pandas as pd

from gimg import models
from gimg.classify import OnnxGender
from gimg.sidebyside import compare_backends
from gimg.crops import box_in_crop, decode_crop
from gimg.facechips import align_chips
from gimg.netgrad import Net
from gimg.options import EvaluateOptions, TrainOptions
from gimg.train import in_memory_p_female, split_indices, train
from gimg.trained import TrainedGender


def test_a_model_trained_on_shared_faces_holds_up_on_unseen_ones(shared_data, tmp_path):
    labels = pd.read_csv(shared_data / "faces" / "utkface" / "labels.csv")
    strata = (labels.gender + "|" + labels.race).to_numpy()
    _, picked = split_indices(strata, 0.25, np.random.default_rng(11))  # 500 faces, 50 per gender x race
    chosen = labels.iloc[picked].reset_index(drop=True)
    train_index, holdout_index = split_indices((chosen.gender + "|" + chosen.race).to_numpy(), 0.4,
                                               np.random.default_rng(12))
    chosen.iloc[train_index].to_csv(tmp_path / "train.csv", index=False)
    chosen.iloc[holdout_index].to_csv(tmp_path / "holdout.csv", index=False)
    images = shared_data / "faces" / "utkface" / "images"
    result = train(tmp_path / "train.csv", tmp_path / "model", TrainOptions(images=images, epochs=3, balance="race"),
                   work_dir=tmp_path / "faces")
    assert result.manifest["training"]["train"] + result.manifest["training"]["validation"] == len(train_index)
    backend = TrainedGender(tmp_path / "model")
    evaluation = compare_backends(tmp_path / "holdout.csv", {"onnx": OnnxGender(), "trained": backend},
                                  tmp_path / "holdout", EvaluateOptions(images=images))
    summary = evaluation.comparison.summary.set_index("model")
    print(summary.to_string())
    assert summary.loc["trained", "faces"] >= 190
    assert summary.loc["trained", "accuracy"] >= 0.93
    scored = evaluation.predictions["trained"].dropna(subset=["p_female"])
    folder = tmp_path / "holdout" / "Cropped_faces" / "evaluation"
    rows = pd.read_csv(folder / "faces.csv").set_index("file")
    crops = [(decode_crop((folder / crop).read_bytes()), box_in_crop(rows.loc[crop].to_dict())) for crop in scored.crop]
    in_memory = in_memory_p_female(Net(onnx.load(str(models.gender_onnx()))), result.params,
                                   align_chips(crops, backend.spec))
    assert np.abs(in_memory - scored.p_female.to_numpy()).max() < 1e-5

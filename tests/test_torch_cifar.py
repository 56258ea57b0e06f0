"""hgref.torch.models and the §6 CIFAR script (smoke runs on random CIFAR-shaped tensors)."""
import json

import pytest
import torch

import _torch_helpers  # noqa: F401  (one torch thread)
from hgref.torch import cifar
from hgref.torch.models import MLP, resnet18, vgg11_bn


def test_models_shapes_and_sizes():
    x = torch.randn(2, 3, 32, 32)
    vgg, res = vgg11_bn(10), resnet18(100)
    assert vgg(x).shape == (2, 10) and res(x).shape == (2, 100)
    # VGG-11-BN conv stack (9.22M) + 512→10 head; ResNet-18 CIFAR (11.17M) + 512→100 head
    assert sum(p.numel() for p in vgg.parameters()) == 9_231_114
    assert sum(p.numel() for p in res.parameters()) == 11_220_132


def test_mlp_flat_layout_round_trip():
    m = MLP((5, 3, 2), dtype=torch.float64)
    w = torch.arange(5 * 3 + 3 + 3 * 2 + 2, dtype=torch.float64)
    m.load_flat(w)
    assert torch.equal(m.flat(), w) and torch.equal(m.weights[0][0], torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="length 26"):
        m.load_flat(torch.zeros(3))


@pytest.mark.parametrize("dataset, method", [("cifar10", "marthe"), ("cifar100", "hd"), ("cifar10", "sgdr")])
def test_cifar_script_smoke(tmp_path, dataset, method):
    result = cifar.main(["--smoke", "--dataset", dataset, "--method", method, "--out", str(tmp_path),
                         "--device", "cpu"])
    saved = json.loads((tmp_path / f"{dataset}-{method}-seed0-smoke.json").read_text())
    assert saved["steps"] == 2 and len(saved["lr"]) == 2 and saved["lr"] == result["lr"]
    assert saved["config"]["dynamics"] == ("heavy_ball" if dataset == "cifar10" else "adam")


def test_cifar_missing_data_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        cifar.load_cifar("cifar10", tmp_path)

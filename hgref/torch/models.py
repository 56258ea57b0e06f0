"""Networks of the MARTHE experiments, in plain torch (torchvision is not required).

* :class:`MLP` — the §5 MNIST ReLU MLP with :func:`hgref.problems.mnist_mlp`'s flat weight
  layout (per layer ``W`` in × out row-major, then ``b``), so weights copy exactly both ways
  (:meth:`MLP.load_flat`, :meth:`MLP.flat`).
* :func:`vgg11_bn` — VGG-11 (Simonyan & Zisserman 2014, configuration "A") with BatchNorm,
  CIFAR head (one linear layer on the 512-d feature after five poolings of a 32×32 image).
* :func:`resnet18` — ResNet-18 (He et al. 2016), CIFAR variant: 3×3 stem convolution with
  stride 1 and no max-pool, four stages of two basic blocks (64, 128, 256, 512 channels).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MLP", "vgg11_bn", "resnet18", "VGG", "ResNet"]


class MLP(nn.Module):
    """ReLU MLP ``widths[0] → … → widths[-1]`` computing ``a @ W + b`` per layer (hgref layout).

    >>> m = MLP((784, 16, 10)); m.flat().shape
    torch.Size([12730])
    """

    def __init__(self, widths=(784, 500, 500, 500, 10), init="glorot", generator=None,
                 dtype=None, device=None):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"Invalid widths: {widths}; need >= 2 positive layer sizes")
        if init not in ("glorot", "zeros"):
            raise ValueError(f"Invalid init: {init!r}; accepted values: 'glorot', 'zeros'")
        self.widths = widths
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            W = torch.zeros(n_in, n_out, dtype=dtype, device=device)
            if init == "glorot":
                lim = math.sqrt(6.0 / (n_in + n_out))
                W.uniform_(-lim, lim, generator=generator)
            self.weights.append(nn.Parameter(W))
            self.biases.append(nn.Parameter(torch.zeros(n_out, dtype=dtype, device=device)))

    def forward(self, x):
        a = x.reshape(x.shape[0], -1)
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ W + b
            if i < last:
                a = F.relu(a)
        return a

    def flat_parameters(self):
        """Parameters in hgref's flat order: W_1, b_1, W_2, b_2, …"""
        return [p for W, b in zip(self.weights, self.biases) for p in (W, b)]

    @torch.no_grad()
    def load_flat(self, w):
        """Copy a flat vector (NumPy or torch) in hgref's layout into the parameters."""
        w = torch.as_tensor(w)
        n = sum(p.numel() for p in self.flat_parameters())
        if w.ndim != 1 or w.numel() != n:
            raise ValueError(f"w must be a 1-d vector of length {n}, got shape {tuple(w.shape)}")
        o = 0
        for p in self.flat_parameters():
            p.copy_(w[o:o + p.numel()].view_as(p))
            o += p.numel()
        return self

    def flat(self):
        """The parameters as one flat vector in hgref's layout (a detached copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self.flat_parameters()])


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG feature stack with BatchNorm and a linear CIFAR classifier."""

    def __init__(self, config=_VGG11, num_classes=10):
        super().__init__()
        layers, c = [], 3
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]   # torchvision keeps the bias
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class _BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet with basic blocks (``blocks`` per stage)."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, c = [], 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for j in range(n):
                stages.append(_BasicBlock(c, width, 2 if (j == 0 and i > 0) else 1))
                c = width
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def vgg11_bn(num_classes=10):
    """VGG-11 with BatchNorm for 32×32 inputs (MARTHE §6, CIFAR-10)."""
    return VGG(_VGG11, num_classes)


def resnet18(num_classes=100):
    """ResNet-18, CIFAR variant (MARTHE §6, CIFAR-100)."""
    return ResNet((2, 2, 2, 2), num_classes)

"""Ready-made adapters for hgref's own torch bridge (:mod:`hgref.torch`), estimate-only (β = 0).

For ``hgref check hgref.testing.bridge.rtho`` and as examples of :class:`TorchAdapter`.
Creating them does not import torch.
"""
from .adapters import hgref_adapter

__all__ = ["hd", "hd_train", "rtho", "marthe", "marthe_adaptive", "ALL"]

hd = hgref_adapter("hd")                                #: HD, μ = 0, objective E
hd_train = hgref_adapter("hd", objective="train")       #: HD, μ = 0, objective L_t + λ/2‖w‖² (coupled λ)
rtho = hgref_adapter("rtho")                            #: RTHO, μ = 1
marthe = hgref_adapter("marthe", mu=0.9)                #: MARTHE, fixed μ = 0.9
marthe_adaptive = hgref_adapter("marthe", mu="adaptive")  #: MARTHE, μ_t of Appendix A
ALL = {"hd": hd, "hd_train": hd_train, "rtho": rtho, "marthe": marthe, "marthe_adaptive": marthe_adaptive}

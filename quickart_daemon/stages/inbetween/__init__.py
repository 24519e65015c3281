"""`inbetween`: every drawing the shot's timing asks for, generated between its two keys.

For each layer and each pair of consecutive keys (``ctx.schedule.inbetweens``):

1. **Safety rails** (:func:`classical.pair_check`): the same drawing exposed twice
   (duplicate) or keys that share too little content (a cut) are *held*: the in-betweens
   repeat the earlier key, and the job report lists them (``holds`` and a warning).
2. **Method** (option ``method``):

   * ``auto`` (default): the method for the slot's device (:data:`AUTO`, issue 21): ``anime`` on
     a CUDA slot, ``rife`` on a CPU slot. The report says both (``asked``, ``method``).
   * ``anime``: GMFSS Fortuna, the anime-trained interpolator (:mod:`.anime`, our network in
     :mod:`.gmfss` on the published weights, ``quickart models install gmfss-fortuna``): per pair
     one motion (global-matching flow, softmax splatting, a fusion net); what held still is kept
     exactly; the same computation on any device (slow on a CPU: docs/inbetween.md "Speed").
     Missing or altered weights: ``rife`` with a warning.
   * ``rife``: our IFNet (:mod:`.ifnet`) on the published Practical-RIFE v4 weights
     (``quickart models install rife-v4``), the pair encoded once and all its timesteps in
     one batch.
   * ``guarded`` (the default ``auto`` of issue 14): RIFE on the keys, guarded (:mod:`.guard`, issue 14): each in-between is
     a mix of a hold of the nearer key, an eased blend, the keys snapped to the motion and the
     motion itself, weighted by how well each predicts the shot's own keys from their
     neighbours (a self-check per pair), so where the motion cannot be trusted the stage holds
     or blends instead of morphing; snap and motion weights near zero skip the network. Then a
     drawing of the shot replaces the mix where it is the better bet (:func:`.guard.drawn_instead`:
     a key lying between the pair's keys that is nearer the mix than both, as in cycles and
     ping-pongs; or the nearer key where a bet on a held drawing has the better expected
     outcome). Without a key to check on (two-key shots) it is the ``motion`` method as it is
     (``unchecked``). The report's ``frames`` records per in-between what it did (``did``: hold,
     blend, snap, motion, mix, unchecked, reuse or held (bet), these two with ``copy_of``: the key
     shown; the weights; the self-check) and the ``confidence`` variant maps per pixel where the
     candidates disagree. (Guarding the large-motion search instead measured 0.1 dB more PSNR on
     the real development set but a worse line chamfer and 2.5x the time.)
   * ``motion``: ``auto`` before issue 14 (unguarded): ``rife`` plus the large-motion method.
     When the measured motion between the keys (median dense-flow magnitude over the drawing) is at least
     ``LARGE_MOTION_PX``, each in-between is the per-pixel consensus (:func:`.motion.consensus`)
     of RIFE on the keys, the keys *re-drawn at t from flat-colour regions matched between
     them* (:mod:`.motion`: segmentation, matching by colour/area/position, an affine motion and
     a depth order per region), that re-drawn pair through RIFE, and RIFE on the keys
     pre-aligned along the smoothed classical flow and along the global shift.
   * ``classical``: OpenCV DIS flow both ways, occlusion-aware blending. Also the fallback
     when the weights are not installed or fail their checksum (a warning on the job).

3. **Alpha**: warps and blends work on premultiplied RGBA (:mod:`.engine`).

Memory: on CPU the engine sizes each forward pass from the frame size, the 8 GiB bound and
MemAvailable (``engine.plan``: timesteps per pass, and flow estimated in overlapping horizontal
bands when one whole frame does not fit); 4K runs in about 4.2 GiB.

Options: ``scale`` (``auto`` or a flow scale from ``ifnet.SCALES``; ``auto`` = 1.0 up to
2.2 Mpixel, 0.5 above, as Practical-RIFE recommends for 4K), ``backend`` (``auto`` | ``torch``
| ``ncnn``: :mod:`.ncnn_backend`, the same network exported with pnnx, ``quickart models install
rife-v4-ncnn``, flow scales 1 and 0.5, fp32, Vulkan when ncnn sees a GPU; ``auto`` = torch
unless ncnn has a Vulkan GPU and CUDA is absent, see ``_auto_backend``; the report's
``backend`` says which ran), ``method``, ``precision`` (``auto`` = fp32; ``fp16`` on CUDA only,
untested here).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ...errors import ModelLoadError, StageFailed
from ..base import Frames, Option, StageContext, StageResult, StageSpec
from ..labels import confidence_image
from . import classical, guard, motion

MODEL_NAME = "rife-v4"
#: median flow magnitude (pixels) from which `motion` (and `guarded` on two keys) searches pre-aligned candidates
LARGE_MOTION_PX = 3.0
#: (keys before, keys after) a held-out key is predicted across: the nearest neighbours (t = 1/2),
#: and one side a key further (t = 1/3, 2/3), which shows whether drawings near a key hold
HELD_OUT_SPANS = ((1, 1), (1, 2), (2, 1))
METHODS = ("auto", "anime", "rife", "guarded", "motion", "classical")
#: the method `auto` runs, by the slot's device: the anime network where a GPU makes it affordable
#: (on two CPU threads it costs tens of seconds a 1080p in-between: docs/inbetween.md), RIFE on a
#: CPU (issue 21: on animation the project never saw, RIFE beat the guard of issue 14 on aggregate
#: PSNR at gaps 2 and 4 and drew fewer ghost lines at every gap)
AUTO = {"cuda": "anime", "cpu": "rife"}


def resolve_method(method: str, device: str | None) -> str:
    """The method that runs: `auto` becomes the one for the slot's device (:data:`AUTO`)."""
    if method != "auto":
        return method
    return AUTO["cuda" if (device or "cpu").startswith("cuda") else "cpu"]
BACKENDS = ("auto", "torch", "ncnn")


def choose_scale(option: str, height: int, width: int) -> float:
    from .ifnet import SCALES
    if str(option) == "auto":
        return 1.0 if height * width <= 2_200_000 else 0.5
    try:
        scale = float(option)
    except ValueError:
        raise StageFailed(f"inbetween: scale {option!r} is not 'auto' or a number; use one of {SCALES}") from None
    if scale not in SCALES:
        raise StageFailed(f"inbetween: scale {scale} is not supported; use auto or one of {SCALES}")
    return scale


#: the ncnn model (`quickart models install rife-v4-ncnn`: rife-v4 exported with pnnx)
NCNN_MODEL_NAME = "rife-v4-ncnn"


def _ncnn_scale_ok(scale: str, scales) -> bool:
    try:
        return scale == "auto" or float(scale) in scales
    except ValueError:
        return True  # not a number: choose_scale reports it


def _ncnn_engine(ctx: StageContext, precision: str):
    """(NcnnEngine, sha256 of its .param as pinned) or StageFailed (ncnn missing) / ModelLoadError (model missing/bad)."""
    try:
        import ncnn  # noqa: F401
    except ImportError:
        raise StageFailed("inbetween: backend ncnn asked for but the ncnn package is not installed "
                          "(pip install ncnn==1.0.20261020, then `quickart models install rife-v4-ncnn`)") from None
    if precision == "fp16":
        raise StageFailed("inbetween: the ncnn backend runs fp32 only; use precision auto or fp32")
    import torch

    from ...weights import load_manifest, verified_files
    from .ncnn_backend import SCALE_OUTPUTS, NcnnEngine, load_net, vulkan_gpu_count
    scale = str((ctx.params or {}).get("scale", "auto"))
    if not _ncnn_scale_ok(scale, SCALE_OUTPUTS):
        raise StageFailed(f"inbetween: the ncnn model has flow scales {sorted(SCALE_OUTPUTS)} only, not {scale}; "
                          "use backend: torch for other scales")
    param, binf = verified_files(NCNN_MODEL_NAME, ctx.models_dir)  # ModelLoadError names the install command
    pinned = load_manifest()[NCNN_MODEL_NAME].all_files()  # both files just checked against these
    digest = pinned[param.name]
    vulkan = vulkan_gpu_count() > 0
    engine = NcnnEngine(load_net(param, binf, pinned[binf.name], torch.get_num_threads(), vulkan), vulkan)
    engine.models = {NCNN_MODEL_NAME: digest}
    return engine, digest


def _auto_backend(ctx: StageContext, precision: str) -> str:
    """`backend: auto`, a rule from measurements (bench/bench_inbetween.py, docs/inbetween.md):

    * torch on CPU: ncnn's CPU path is slower than our torch forward. Measured with
      `bench/bench_inbetween.py` (2 threads, 2-core AVX-512 Xeon, one process alternating):
      ncnn took 1.5-3.9x torch's time at 960x540 and 1920x1080 (two runs) and 1.8x at 3840x2160
      (ncnn runs the published forward, about the reference's speed; our torch forward computes
      only what each block reads);
      ncnn also needs more memory (1360 vs ~820 B/px at scale 1);
    * torch on CUDA (`device: cuda:N`, or fp16 asked for);
    * ncnn only where it is the only accelerator: ncnn sees a Vulkan GPU (AMD/Intel), CUDA is
      not available, and the ncnn package and its verified model are installed. Otherwise torch.
    """
    device = ctx.device or "cpu"
    if device.startswith("cuda") or precision == "fp16":
        return "torch"
    try:
        import ncnn  # noqa: F401
        import torch

        from ...weights import verified_files
        from .ncnn_backend import SCALE_OUTPUTS, vulkan_gpu_count
    except ImportError:
        return "torch"
    if not _ncnn_scale_ok(str((ctx.params or {}).get("scale", "auto")), SCALE_OUTPUTS):
        return "torch"
    if torch.cuda.is_available() or vulkan_gpu_count() == 0:
        return "torch"
    try:
        verified_files(NCNN_MODEL_NAME, ctx.models_dir)
    except ModelLoadError:
        return "torch"
    return "ncnn"


def _engine(ctx: StageContext, backend: str, precision: str):
    """(engine, sha256) for the chosen backend (`auto`: see `_auto_backend`), or raises
    ModelLoadError (weights or ncnn model missing/bad: the stage falls back to classical) or
    StageFailed (the backend cannot run on this node). `engine.backend` names the one that runs."""
    if backend == "auto":
        backend = _auto_backend(ctx, precision)
    if backend == "ncnn":
        engine, digest = _ncnn_engine(ctx, precision)
        engine.backend = "ncnn-vulkan" if engine.vulkan else "ncnn"
        return engine, digest
    import torch

    from ...filehash import sha256_file
    from ...weights import verified_path
    from .engine import TorchEngine, get_model
    path = verified_path(MODEL_NAME, ctx.models_dir)
    digest = sha256_file(path)
    device = ctx.device or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StageFailed(f"inbetween: device {device} asked for but CUDA is not available on this node")
    dtype = torch.float16 if (precision == "fp16" and device.startswith("cuda")) else torch.float32
    engine = TorchEngine(get_model(path, digest, device, dtype), device, dtype)
    engine.backend = "torch"
    return engine, digest


def _layer_method(method: str, frames: Frames, layer: str) -> str:
    """The method a layer's pairs run: `anime` (asked for, or `auto` on a GPU slot) gives a layer
    with transparency to RIFE. The anime network's fusion draws a composite over white, which says
    nothing exact about alpha (docs/inbetween.md: its own alpha pass made white halos round ink,
    an alpha from the darkness of its frame too, and a softmax splat of the premultiplied keys
    along its flows left speckles and scored 29.55 dB against RIFE's 32.59 on the generator's
    transparent cels), while RIFE's flows and mask apply to the premultiplied keys exactly."""
    if method == "anime" and any(v[..., 3].min() < 255 for (l, _), v in frames.items()
                                 if l == layer and v.ndim == 3 and v.shape[-1] == 4):
        return "rife"
    return method


def _anime_engine(ctx: StageContext, precision: str):
    """(the anime network's engine, {model: sha256 of its first file}), or ModelLoadError (weights
    missing or altered: RIFE then). Checked here, where the fallback is decided; the engine loads the
    network at its first pair, when the frame size has chosen the flow scale."""
    import torch

    from ...weights import load_manifest, verified_files
    from .anime import MODEL, AnimeEngine
    verified_files(MODEL, ctx.models_dir)
    device = ctx.device or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StageFailed(f"inbetween: device {device} asked for but CUDA is not available on this node")
    dtype = torch.float16 if (precision == "fp16" and device.startswith("cuda")) else torch.float32
    return AnimeEngine(ctx.models_dir, device, dtype), {MODEL: load_manifest()[MODEL].sha256}


def _global_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2
    ga = 1.0 - cv2.cvtColor(classical.over_white(a).astype(np.float32), cv2.COLOR_RGB2GRAY)
    gb = 1.0 - cv2.cvtColor(classical.over_white(b).astype(np.float32), cv2.COLOR_RGB2GRAY)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb)
    return np.float32([dx, dy])


def _shift_prealign(a, b, d, t):
    h, w = a.shape[:2]
    fa = np.broadcast_to(-t * d, (h, w, 2)).astype(np.float32)
    fb = np.broadcast_to((1.0 - t) * d, (h, w, 2)).astype(np.float32)
    return classical.backward_warp(a, fa), classical.backward_warp(b, fb)


def rife_pair(engine, a: np.ndarray, b: np.ndarray, times: list[float], scale: float, search: bool,
              fl: classical.Flows | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Premultiplied frames at `times`: RIFE on the keys, or with `search` (large motion) the
    per-pixel consensus (:func:`.motion.consensus`) of five candidates: RIFE on the keys, the
    keys re-drawn at t from their matched regions (:mod:`.motion`), that re-drawn pair through
    RIFE, and RIFE on the keys pre-aligned along the smoothed DIS flow and along the global shift."""
    direct = engine.pair(a, b, times, scale, disagreement=False)
    if not search:
        return direct.frames, ["direct"] * len(times)
    fl = fl or classical.flows(a, b)
    d = _global_shift(a, b)
    regions = motion.estimate(a, b, d)
    frames = []
    for i, t in enumerate(times):
        ra, rb, redrawn = motion.prealign(a, b, regions, t)
        cands = [direct.frames[i], redrawn]
        for pa, pb in ((ra, rb), classical.prealign(a, b, fl, t), _shift_prealign(a, b, d, t)):
            cands.append(engine.pair(pa, pb, [t], scale, disagreement=False).frames[0])
        frames.append(motion.consensus(cands))
    return frames, ["consensus"] * len(times)


def inbetween(frames: Frames, ctx: StageContext) -> StageResult:
    params = {**SPEC.defaults(), **(ctx.params or {})}
    method, backend = str(params["method"]), str(params["backend"])
    if method not in METHODS:
        raise StageFailed(f"inbetween: method {method!r} is not one of {', '.join(METHODS)}")
    if backend not in BACKENDS:
        raise StageFailed(f"inbetween: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    out: Frames = dict(frames)
    warnings: list[str] = []
    asked, method = method, resolve_method(method, ctx.device)
    report: dict = {"method": method, "asked": asked, "backend": None, "holds": [], "candidates": {}, "frames": []}
    groups: dict[tuple[str, int, int], list] = defaultdict(list)
    layers = sorted({l for l, _ in frames})
    for layer in layers:
        for ib in ctx.schedule.inbetweens(layer):
            groups[(layer, ib.before, ib.after)].append(ib)
    total = sum(len(v) for v in groups.values())
    used = {layer for layer, _, _ in groups}
    per_layer = {layer: _layer_method(method, frames, layer) for layer in used}

    engine = anime = None
    report["models"] = {}
    if "anime" in per_layer.values():
        try:
            anime, digests = _anime_engine(ctx, str(params["precision"]))
            report["models"].update(digests)
            report["backend"] = "torch"
        except ModelLoadError as exc:
            warnings.append(f"in-betweens made with RIFE, not the anime network: {exc}")
            per_layer = {layer: "rife" if m == "anime" else m for layer, m in per_layer.items()}
    if set(per_layer.values()) - {"classical", "anime"}:
        try:
            engine, digest = _engine(ctx, backend, str(params["precision"]))
            report["models"].update(getattr(engine, "models", None) or {MODEL_NAME: digest})
            report["backend"] = getattr(engine, "backend", "torch")
        except ModelLoadError as exc:
            warnings.append(f"in-betweens made with the classical optical-flow fallback, not RIFE: {exc}")
            per_layer = {layer: "classical" if m != "anime" else m for layer, m in per_layer.items()}
    if not report["models"]:
        del report["models"]
    if per_layer:
        ran = sorted(set(per_layer.values()))
        report["method"] = ran[0] if len(ran) == 1 else method
        if len(ran) > 1:
            report["layers"] = dict(sorted(per_layer.items()))

    keys = _Keys(frames, ctx.schedule)
    report["decisions"] = {}
    confidence: Frames = {}
    done = 0
    for (layer, before, after), ibs in groups.items():
        ka, kb = frames[(layer, before)], frames[(layer, after)]
        if ka.shape != kb.shape:
            raise StageFailed(f"layer {layer}: keys {before} and {after} differ in size "
                              f"({ka.shape[1]}x{ka.shape[0]} vs {kb.shape[1]}x{kb.shape[0]})")
        a, b = keys.premultiplied(layer, before), keys.premultiplied(layer, after)
        method = per_layer[layer]
        guarded = method == "guarded"
        check, fl = keys.check(layer, before, after)
        times = [ib.t for ib in ibs]
        weights, evidence, motions = [None] * len(ibs), guard.Evidence(), [None] * len(ibs)
        if check.verdict != "ok":
            made = [a] * len(ibs)
            report["holds"].append({"layer": layer, "keys": [before, after], "reason": check.verdict,
                                    "detail": check.detail, "drawings": [ib.drawing for ib in ibs]})
            warnings.append(f"layer {layer}: keys {before} and {after} look like a {check.verdict} "
                            f"({check.detail}); held {before} instead of in-betweening")
        elif method == "classical":
            fl = fl or classical.flows(a, b)
            made = [classical.classical_inbetween(a, b, t, fl) for t in times]
        elif method == "anime":
            made, pair_confidence = anime.pair(a, b, times)
        elif method == "rife":  # the network on the keys, with where its two warped keys disagree
            result = engine.pair(a, b, times, choose_scale(params["scale"], *a.shape[:2]), disagreement=True)
            made, pair_confidence = result.frames, [guard.sureness(m) for m in result.maps]
            report["candidates"]["direct"] = report["candidates"].get("direct", 0) + len(times)
        else:
            scale = choose_scale(params["scale"], *a.shape[:2])
            if guarded:
                evidence = keys.evidence(layer, before, after, engine, scale)
                weights = [guard.fit_weights(evidence, t) for t in times]
            if not guarded or any(w is None or w["motion"] + w["snap"] >= guard.MIN_MOTION_WEIGHT for w in weights):
                # the large-motion search where nothing checks the motion (method motion, or auto
                # without a key to check on); checked pairs use RIFE, the call their check tested
                unchecked = method == "motion" or (guarded and all(w is None for w in weights))
                search = unchecked and check.motion >= LARGE_MOTION_PX
                if not search:
                    keys.forget(layer, before)
                motions, chosen = rife_pair(engine, a, b, times, scale, search, fl)
                for c in chosen:
                    report["candidates"][c] = report["candidates"].get(c, 0) + 1
            if guarded:
                made = [guard.mix(a, b, t, m, w) for t, m, w in zip(times, motions, weights)]
            else:
                made = motions
        drawn = [(None, None)] * len(ibs)
        if guarded and check.verdict == "ok":
            reusable = keys.between(layer, before, after)
            for i, (t, w) in enumerate(zip(times, weights)):
                made[i], *drawn[i] = guard.drawn_instead(made[i], a, b, reusable,
                                                         guard.expected_mse(evidence, t, w, a, b), (before, after))
        for i, (ib, p, m, w, (how, copy)) in enumerate(zip(ibs, made, motions, weights, drawn)):
            out[(layer, ib.drawing)] = ka if check.verdict != "ok" else classical.unpremultiply(p)
            if guarded:
                conf = guard.confidence_map(a, b, ib.t, m, p, guard.reliability(evidence, ib.t, w))
                did = f"held ({check.verdict})" if check.verdict != "ok" else how or guard.decision(w)
            elif check.verdict != "ok":
                conf, did = np.ones(a.shape[:2], np.float32), f"held ({check.verdict})"
            elif method in ("anime", "rife"):  # where the keys agree nothing moved: sure
                conf = np.where(guard.changing(a, b), pair_confidence[i], 1.0).astype(np.float32)
                did = "motion"
            else:  # how far the other plausible in-betweens (hold, blend, snap) lie from this one
                conf, did = guard.confidence_map(a, b, ib.t, p, p), "motion"
            confidence[(layer, ib.drawing)] = confidence_image(conf)
            report["decisions"][did] = report["decisions"].get(did, 0) + 1
            report["frames"].append(_record(layer, ib, did, w, evidence, conf, a, b, copy))
        keys.forget(layer, before)  # the next pair's previous key is this pair's first
        done += len(ibs)
        ctx.progress(done, total)
    if report["decisions"]:
        unsure = [f for f in report["frames"] if f["confident"] < 0.5]
        if unsure:
            warnings.append(f"{len(unsure)} in-betweens have under half of their changing pixels confident "
                            "(report: frames; variant: confidence): check those first")
    report.update(inbetweens=total, warnings=warnings)
    return StageResult(out, report, {"confidence": confidence} if confidence else {})


def _record(layer: str, ib, did: str, weights, evidence, conf: np.ndarray, a: np.ndarray, b: np.ndarray,
            copy: int | None = None) -> dict:
    """One in-between's line in the report: what it is made of and how sure the stage is
    (`copy`: the key it shows, where it is a drawing of the shot, did = reuse or held (bet))."""
    moving = guard.changing(a, b)
    rec = {"layer": layer, "drawing": ib.drawing, "keys": [ib.before, ib.after], "t": round(ib.t, 4), "did": did,
           "changed": round(float(moving.mean()), 4),
           "confident": round(float((conf[moving] >= 0.5).mean()) if moving.any() else 1.0, 4)}
    if copy is not None:
        rec["copy_of"] = copy
    if weights is not None:
        rec["weights"] = {k: round(v, 3) for k, v in weights.items()}
        rec["self_check"] = {"keys": sorted({x.key for x in evidence.near(ib.t)}),
                             "psnr": round(guard.self_check_psnr(evidence, ib.t, weights), 2)}
    return rec


class _Keys:
    """The keys of every layer, premultiplied once, with the pair checks and the held-out evidence a
    pair shares with its neighbours."""

    def __init__(self, frames: Frames, schedule):
        self.frames = frames
        self.keys = {layer: sorted(k for k in ks if (layer, k) in frames) for layer, ks in schedule.keys.items()}
        self._pre: dict = {}
        self._checks: dict = {}
        self._verdicts: dict = {}  # pair -> its check's verdict (kept after its turn)
        self._evidence: dict = {}  # (layer, key) -> guard.Evidence of that key held out
        self._thumbs: dict = {}  # (layer, key) -> guard.thumbnail of the premultiplied key

    def premultiplied(self, layer: str, k: int) -> np.ndarray:
        if (layer, k) not in self._pre:
            self._pre[(layer, k)] = classical.premultiply(self.frames[(layer, k)])
        return self._pre[(layer, k)]

    def forget(self, layer: str, first: int) -> None:
        """Drop the premultiplied keys before `first` and of other layers (memory at 4K: a
        pair needs its keys and their neighbours only)."""
        self._pre = {lk: v for lk, v in self._pre.items() if lk[0] == layer and lk[1] >= first}

    def _run_check(self, layer: str, k0: int, k1: int) -> None:
        check = classical.pair_check(self.premultiplied(layer, k0), self.premultiplied(layer, k1))
        self._checks[(layer, k0, k1)] = check
        self._verdicts[(layer, k0, k1)] = check[0].verdict

    def check(self, layer: str, k0: int, k1: int):
        """(pair check, flows) of two keys, once (a neighbour pair's is kept for its own turn)."""
        if (layer, k0, k1) not in self._checks:
            self._run_check(layer, k0, k1)
        return self._checks.pop((layer, k0, k1))

    def _verdict(self, layer: str, k0: int, k1: int) -> str:
        if (layer, k0, k1) not in self._verdicts:
            self._run_check(layer, k0, k1)
        return self._verdicts[(layer, k0, k1)]

    def held_out(self, layer: str, k: int, engine, scale: float) -> guard.Evidence:
        """Key k predicted from keys either side of it (:func:`.guard.held_out`), once: from its
        nearest neighbours and, where they exist, with one side a key further; never across a
        cut or between drawings of different sizes."""
        if (layer, k) in self._evidence:
            return self._evidence[(layer, k)]
        ks = self.keys.get(layer, [])
        i = ks.index(k) if k in ks else -1
        ev = guard.Evidence()
        for j0, j1 in HELD_OUT_SPANS:
            if i - j0 < 0 or i + j1 >= len(ks):
                continue
            span = ks[i - j0:i + j1 + 1]
            if len({self.frames[(layer, x)].shape for x in span}) > 1 or \
                    any(self._verdict(layer, x, y) == "cut" for x, y in zip(span, span[1:])):
                continue
            p, n = span[0], span[-1]
            P, K, N = (self.premultiplied(layer, x) for x in (p, k, n))
            t = (k - p) / (n - p)
            predicted = engine.pair(P, N, [t], scale, disagreement=False).frames[0]
            ev.tests.append(guard.held_out(P, K, N, t, predicted, k))
        self._evidence[(layer, k)] = ev
        return ev

    def evidence(self, layer: str, before: int, after: int, engine, scale: float) -> guard.Evidence:
        """What the shot's keys say about the candidates, for the pair (before, after)."""
        return self.held_out(layer, before, engine, scale) + self.held_out(layer, after, engine, scale)

    def thumbnail(self, layer: str, k: int) -> np.ndarray:
        if (layer, k) not in self._thumbs:  # not kept full size: a layer's keys at 4K would not fit
            full = self._pre.get((layer, k))
            self._thumbs[(layer, k)] = guard.thumbnail(classical.premultiply(self.frames[(layer, k)])
                                                       if full is None else full)
        return self._thumbs[(layer, k)]

    def between(self, layer: str, before: int, after: int) -> dict[int, np.ndarray]:
        """{key: premultiplied key} of the layer's other keys of the same size that lie between
        keys `before` and `after` (:func:`.guard.between`, on thumbnails): drawings the shot
        already has that an in-between of the pair may be (cycles, ping-pongs)."""
        shape = self.frames[(layer, before)].shape
        others = {k: self.thumbnail(layer, k) for k in self.keys.get(layer, [])
                  if k not in (before, after) and self.frames[(layer, k)].shape == shape}
        found = guard.between(self.thumbnail(layer, before), self.thumbnail(layer, after), others)
        return {k: self._pre.get((layer, k)) if (layer, k) in self._pre else
                classical.premultiply(self.frames[(layer, k)]) for k in found}


SPEC = StageSpec(
    name="inbetween", run=inbetween, kind="timing", publish_folder=None,
    description="in-betweens from our RIFE v4 network (large-motion search guarded by a self-check on the keys, alpha, cut/duplicate holds)",
    options=(
        Option("method", str, "auto", "auto (anime on a GPU slot, rife on a CPU slot) | anime (GMFSS Fortuna, the "
                                      "anime-trained network; `quickart models install gmfss-fortuna`) | rife | guarded "
                                      "(RIFE mixed with hold and blend by a self-check on the shot's keys) | motion "
                                      "(RIFE + large-motion search) | classical"),
        Option("scale", str, "auto", "flow scale: auto, or 0.125 0.25 0.5 1 2 (lower sees larger motion, uses less memory)"),
        Option("backend", str, "auto", "auto | torch | ncnn (auto = torch, or ncnn on a Vulkan GPU without CUDA; ncnn needs `quickart models install rife-v4-ncnn`)"),
        Option("precision", str, "auto", "auto (fp32) | fp32 | fp16 (CUDA only)"),
    ),
)

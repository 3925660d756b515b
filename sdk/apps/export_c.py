"""``anyedge export-c``: a face detector as a folder an app compiles (model file, generated header, C library).

The folder holds the model file (every member of a bundle, with its manifest), a header
``<ident>.h`` generated from the registry entry or the bundle manifest, and the portable
post-processing library ``anyedge_post.c``/``anyedge_post.h`` (``anyedge/targets/apps/c``).
Every number in the header comes from the model's spec (input size, layout, channel order,
mean/std, strides, anchors, thresholds, keypoints) or from the model file itself (input and
output tensor names, their order, dtypes and quantization), so nothing is written twice by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

from ..bundle import replace_directory
from ..errors import InputError, ModelLoadError
from ..outputs import RECORD, OutputDir, check_replaceable
from ..targets.ctext import c_comment, c_ident, c_string, check_c_ident

__all__ = [
    "FAMILIES",
    "KEYPOINT_NAMES",
    "CExport",
    "ModelParams",
    "model_params",
    "slot_names",
    "render_header",
    "export_c",
    "library_dir",
]

log = logging.getLogger(__name__)

TASK = "face_detection"

# family -> the C library's family code (anyedge_post.h AEPOST_*) and suppression
FAMILIES: dict[str, tuple[str, str]] = {
    "blazeface": ("AEPOST_BLAZEFACE", "AEPOST_SUPPRESS_WEIGHTED"),
    "scrfd": ("AEPOST_SCRFD", "AEPOST_SUPPRESS_NMS"),
    "yunet": ("AEPOST_YUNET", "AEPOST_SUPPRESS_NMS"),
    "retinaface": ("AEPOST_RETINAFACE", "AEPOST_SUPPRESS_NMS"),
    "ultraface": ("AEPOST_ULTRAFACE", "AEPOST_SUPPRESS_NMS"),
}

_FIVE = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "blazeface": ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion"),
    "scrfd": _FIVE,
    "yunet": _FIVE,
    "retinaface": _FIVE,
    "ultraface": (),
}

LIBRARY_FILES = ("anyedge_post.h", "anyedge_post.c")


def library_dir() -> Path:
    """The folder holding the C library's sources."""
    from ..targets.apps import C_DIR

    return C_DIR


def slot_names(family: str, decoder: Mapping[str, Any]) -> list[str]:
    """The output tensor names the family's decoder reads, in the C library's slot order.

    These are the names :mod:`anyedge.decoders` looks up, with the same defaults.
    """
    strides = list(decoder.get("strides", (8, 16, 32)))
    if family == "blazeface":
        names = decoder.get("outputs", {"boxes": "regressors", "scores": "classificators"})
        return [names["boxes"], names["scores"]]
    if family == "scrfd":
        return [f"{kind}_{s}" for s in strides for kind in ("score", "bbox", "kps")]
    if family == "yunet":
        return [f"{kind}_{s}" for s in strides for kind in ("cls", "obj", "bbox", "kps")]
    if family == "retinaface":
        return ["loc", "conf", "iou"]
    if family == "ultraface":
        return ["scores", "boxes"]
    raise InputError(f"export-c supports the face detector families {', '.join(FAMILIES)}; got {family!r}")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None


@dataclass(frozen=True)
class ModelParams:
    """Everything the generated header says, resolved from the spec and the model file."""

    name: str
    ident: str
    family: str
    model_file: str
    engine: str
    input_w: int
    input_h: int
    layout: str
    channels: str
    resize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    keypoints: int
    score_threshold: float
    iou_threshold: float
    strides: tuple[int, ...]
    anchors_per_cell: int
    interpolated_scale_aspect_ratio: float
    min_sizes: tuple[tuple[int, ...], ...]
    variance: tuple[float, float]
    n_priors: int
    max_candidates: int
    input: TensorInfo
    outputs: tuple[TensorInfo, ...]
    slots: tuple[str, ...]
    slot_sizes: tuple[int, ...]
    slot_index: tuple[int, ...]
    provenance: Mapping[str, Any]


def _triple(v: Any) -> tuple[float, float, float]:
    if isinstance(v, (list, tuple)):
        if len(v) != 3:
            raise InputError(f"mean/std must be one number or three, got {list(v)}")
        return (float(v[0]), float(v[1]), float(v[2]))
    return (float(v), float(v), float(v))


def _numel(shape: Sequence[int]) -> int | None:
    n = 1
    for d in shape:
        if d is None or int(d) < 0:
            return None
        n *= int(d)
    return n


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def model_params(spec: Any, engine_inputs: Sequence[Any], engine_outputs: Sequence[Any], *, engine: str,
                 input_size: tuple[int, int] | None = None, ident: str | None = None) -> ModelParams:
    """Resolve the header's contents from a :class:`~anyedge.tasks._loading.ModelSpec` and the
    loaded model's tensors, checking that the outputs hold what the decoder reads.

    Raises:
        InputError: not a face detector family export-c knows, bad input size.
        ModelLoadError: the model's tensors do not match its spec.
    """
    from ..ops.anchors import retinaface_priors, ssd_anchors

    family = spec.family
    if family not in FAMILIES:
        raise InputError(f"export-c supports the face detector families {', '.join(FAMILIES)}; "
                         f"{spec.name} is {family!r}")
    if spec.input is None:
        raise InputError(f"{spec.name}: no input spec known for this model")
    if len(engine_inputs) != 1:
        raise ModelLoadError(f"{spec.name}: a face detector has one input, the model has {len(engine_inputs)}")
    inp = engine_inputs[0]
    hw = inp.shape[1:3] if spec.input.layout == "NHWC" else inp.shape[2:4]
    if all(int(d) > 0 for d in hw):  # as FaceDetector._resolve_input_size
        size = (int(hw[1]), int(hw[0]))
        if input_size and tuple(input_size) != size:
            raise InputError(f"{spec.name} has a static input of {size[0]}x{size[1]}; "
                             f"--input-size {input_size[0]}x{input_size[1]} is not possible")
    else:
        size = tuple(input_size or spec.input.size or ())  # type: ignore[assignment]
        if len(size) != 2:
            raise InputError(f"{spec.name} has a dynamic input: pass --input-size WIDTHxHEIGHT")
        if size[0] <= 0 or size[1] <= 0 or size[0] % 32 or size[1] % 32:
            raise InputError(f"input size must be positive multiples of 32, got {size[0]}x{size[1]}")
    w, h = int(size[0]), int(size[1])
    cfg = spec.decoder
    k = int(cfg.get("keypoints", len(KEYPOINT_NAMES[family])))
    strides = tuple(int(s) for s in cfg.get("strides", (8, 16, 32) if family in ("scrfd", "yunet") else ()))
    per_cell = int(cfg.get("anchors_per_cell", 2))
    interp = float(cfg.get("interpolated_scale_aspect_ratio", 1.0))
    min_sizes = tuple(tuple(int(s) for s in m) for m in cfg.get("min_sizes", ()))
    variance = tuple(float(v) for v in cfg.get("variance", (0.1, 0.2)))
    slots = slot_names(family, cfg)
    outs = [TensorInfo(o.name, tuple(int(d) for d in o.shape), str(o.dtype),
                       tuple(o.quantization) if o.quantization else None) for o in engine_outputs]
    by_name = {o.name: i for i, o in enumerate(outs)}
    missing = [s for s in slots if s not in by_name]
    if missing:
        raise ModelLoadError(f"{spec.name}: the {family} decoder reads outputs {slots}; the model has "
                             f"{[o.name for o in outs]} (missing {missing})")
    n_priors = 0
    if family == "blazeface":
        if k > 6:
            raise ModelLoadError(f"{spec.name}: BlazeFace rows hold at most 6 keypoints, the spec says {k}")
        n = len(ssd_anchors((w, h), strides, float(cfg["min_scale"]), float(cfg["max_scale"]), interp))
        sizes = [n * 16, n]
    elif family == "scrfd":
        sizes = []
        for s in strides:
            c = _ceil(h, s) * _ceil(w, s) * per_cell
            sizes += [c, 4 * c, 2 * k * c]
        n = sum(sizes[0::3])
    elif family == "yunet":
        sizes = []
        for s in strides:
            c = _ceil(h, s) * _ceil(w, s)
            sizes += [c, c, 4 * c, 2 * k * c]
        n = sum(sizes[0::4])
    elif family == "retinaface":
        if k != 5 or len(min_sizes) != len(strides) or any(not 0 < len(m) <= 4 for m in min_sizes):
            raise ModelLoadError(f"{spec.name}: RetinaFace needs 5 keypoints and 1-4 min sizes per stride")
        if len({len(m) for m in min_sizes}) != 1:
            raise ModelLoadError(f"{spec.name}: the C library needs the same number of min sizes on every level")
        n = len(retinaface_priors((w, h), min_sizes, strides))
        sizes = [4 * n, 2 * n, 10 * n]
    else:  # ultraface: the graph decodes its own priors
        n_priors = (_numel(outs[by_name["scores"]].shape) or 0) // 2
        if n_priors == 0:
            raise ModelLoadError(f"{spec.name}: UltraFace needs a static 'scores' output to size its priors")
        n = n_priors
        sizes = [2 * n, 4 * n]
    if family != "ultraface" and not 0 < len(strides) <= 8:
        raise ModelLoadError(f"{spec.name}: the C library takes 1-8 strides, the spec has {list(strides)}")
    for slot, want in zip(slots, sizes):
        have = _numel(outs[by_name[slot]].shape)
        if have is not None and have != want:
            raise ModelLoadError(f"{spec.name}: output {slot!r} holds {have} values at {w}x{h}, "
                                 f"the {family} decoder reads {want}")
    manifest = spec.manifest or {}
    prov: dict[str, Any] = {"model": spec.name, "family": family}
    if manifest:
        for key in ("target", "engine", "precision", "manifest_sha256"):
            if key in manifest:
                prov[key] = manifest[key]
    return ModelParams(
        name=spec.name, ident=c_ident(spec.name) if ident is None else check_c_ident(ident), family=family,
        model_file=Path(spec.path).name, engine=engine, input_w=w, input_h=h, layout=spec.input.layout,
        channels=spec.input.channels, resize=spec.input.resize, mean=_triple(spec.input.mean),
        std=_triple(spec.input.std), keypoints=k,
        score_threshold=float(cfg.get("score_threshold", 0.5)), iou_threshold=float(cfg.get("iou_threshold", 0.4)),
        strides=strides, anchors_per_cell=per_cell, interpolated_scale_aspect_ratio=interp, min_sizes=min_sizes,
        variance=(variance[0], variance[1]), n_priors=n_priors, max_candidates=n,
        input=TensorInfo(inp.name, tuple(int(d) for d in inp.shape), str(inp.dtype),
                         tuple(inp.quantization) if inp.quantization else None),
        outputs=tuple(outs), slots=tuple(slots), slot_sizes=tuple(sizes),
        slot_index=tuple(by_name[s] for s in slots), provenance=prov,
    )


def _d(v: float) -> str:
    """A C double literal that parses back to exactly ``v``."""
    text = repr(float(v))
    return text if any(c in text for c in ".eEn") else text + ".0"


def render_header(p: ModelParams) -> str:
    """The generated C header for one model."""
    I, U = p.ident, p.ident.upper()
    fam, sup = FAMILIES[p.family]
    strides = list(p.strides) + [0] * (8 - len(p.strides))
    sizes = [list(m) + [0] * (4 - len(m)) for m in p.min_sizes] + [[0, 0, 0, 0]] * (8 - len(p.min_sizes))
    n_sizes = len(p.min_sizes[0]) if p.min_sizes else 0
    kp_names = KEYPOINT_NAMES[p.family][: p.keypoints]
    if len(kp_names) < p.keypoints:
        kp_names = kp_names + tuple(f"keypoint_{i}" for i in range(len(kp_names), p.keypoints))
    prov = c_comment(", ".join(f"{k}={v}" for k, v in p.provenance.items()))
    q_in = p.input.quantization

    def arr(values: Sequence[str]) -> str:
        return "{" + ", ".join(values) + "}" if values else "{0}"

    lines = [
        f"/* {I}.h: generated by `anyedge export-c` ({prov}). Do not edit: export again. */",
        f"#ifndef ANYEDGE_MODEL_{U}_H",
        f"#define ANYEDGE_MODEL_{U}_H",
        "",
        '#include "anyedge_post.h"',
        "",
        f"#define {U}_MODEL_FILE {c_string(p.model_file)}",
        f"#define {U}_ENGINE {c_string(p.engine)} /* the engine anyedge runs it on */",
        f"#define {U}_FAMILY {c_string(p.family)}",
        "",
        "/* input: resize the image (aepost_letterbox_params), then aepost_normalize into this tensor */",
        f"#define {U}_INPUT_NAME {c_string(p.input.name)}",
        f"#define {U}_INPUT_W {p.input_w}",
        f"#define {U}_INPUT_H {p.input_h}",
        f"#define {U}_INPUT_LAYOUT {c_string(p.layout)} "
        f"/* {'(1, 3, H, W)' if p.layout == 'NCHW' else '(1, H, W, 3)'} */",
        f"#define {U}_INPUT_CHANNELS {c_string(p.channels)} /* the order the network was trained on */",
        f"#define {U}_INPUT_RESIZE {c_string(p.resize)}",
        f"#define {U}_INPUT_DTYPE {c_string(p.input.dtype)}",
        f"#define {U}_INPUT_QUANT_SCALE {_d(q_in[0]) if q_in else '0.0'} /* 0: a float input */",
        f"#define {U}_INPUT_QUANT_ZERO_POINT {int(q_in[1]) if q_in else 0}",
        "",
        "/* outputs, in the model's own order */",
        f"#define {U}_NUM_OUTPUTS {len(p.outputs)}",
        f"static const char *const {U}_OUTPUT_NAMES[{len(p.outputs)}] = {arr([c_string(o.name) for o in p.outputs])};",
        f"static const char *const {U}_OUTPUT_DTYPES[{len(p.outputs)}] = "
        f"{arr([c_string(o.dtype) for o in p.outputs])};",
        "/* quantized outputs: aepost_dequantize_int8/uint8 with these (scale 0: already float32) */",
        f"static const double {U}_OUTPUT_QUANT_SCALE[{len(p.outputs)}] = "
        f"{arr([_d(o.quantization[0]) if o.quantization else '0.0' for o in p.outputs])};",
        f"static const int32_t {U}_OUTPUT_QUANT_ZERO_POINT[{len(p.outputs)}] = "
        f"{arr([str(int(o.quantization[1])) if o.quantization else '0' for o in p.outputs])};",
        "",
        "/* decoder slots: aepost_detect's outputs[i] is the model output SLOT_OUTPUT_INDEX[i] */",
        f"#define {U}_NUM_SLOTS {len(p.slots)}",
        f"static const char *const {U}_SLOT_NAMES[{len(p.slots)}] = {arr([c_string(s) for s in p.slots])};",
        f"static const int {U}_SLOT_OUTPUT_INDEX[{len(p.slots)}] = {arr([str(i) for i in p.slot_index])};",
        f"static const size_t {U}_SLOT_SIZES[{len(p.slots)}] = {arr([str(n) for n in p.slot_sizes])}; /* floats */",
        "",
        f"#define {U}_NUM_KEYPOINTS {p.keypoints}",
        f"static const char *const {U}_KEYPOINT_NAMES[{max(1, p.keypoints)}] = {arr([c_string(n) for n in kp_names])};",
        "",
        f"/* aepost_face cand[{U}_MAX_CANDIDATES]; uint32_t work[2 * {U}_MAX_CANDIDATES]; */",
        f"#define {U}_MAX_CANDIDATES {p.max_candidates}",
        "",
        f"static const aepost_model {I} = {{",
        f"    {fam}, {sup},",
        f"    {p.input_w}, {p.input_h}, AEPOST_{p.layout}, AEPOST_{p.channels}, "
        f"AEPOST_{'STRETCH' if p.resize == 'stretch' else 'LETTERBOX'},",
        f"    {{{', '.join(_d(v) for v in p.mean)}}}, /* mean */",
        f"    {{{', '.join(_d(v) for v in p.std)}}}, /* std */",
        f"    {p.keypoints},",
        f"    {_d(p.score_threshold)}, {_d(p.iou_threshold)}, /* default score and IoU thresholds */",
        f"    {len(p.strides)}, {{{', '.join(str(s) for s in strides)}}}, /* strides */",
        f"    {p.anchors_per_cell}, /* anchors per cell (SCRFD) */",
        f"    {_d(p.interpolated_scale_aspect_ratio)}, /* interpolated scale aspect ratio (BlazeFace) */",
        f"    {n_sizes}, {{{', '.join('{' + ', '.join(str(v) for v in m) + '}' for m in sizes)}}}, /* min sizes */",
        f"    {{{_d(p.variance[0])}, {_d(p.variance[1])}}}, /* variance (RetinaFace) */",
        f"    {p.n_priors} /* priors (UltraFace) */",
        "};",
        "",
        f"#endif /* ANYEDGE_MODEL_{U}_H */",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class CExport:
    """What :func:`export_c` wrote."""

    out: Path
    header: Path
    files: tuple[str, ...]
    params: ModelParams


def _bundle_members(spec: Any) -> list[tuple[str, Path]]:
    """(name, path) of every file of the bundle a spec came from, its manifest included."""
    from ..bundle import MANIFEST, _safe_member

    manifest = spec.manifest
    model_file = manifest["model_file"]
    root = Path(spec.path)
    for _ in PurePosixPath(_safe_member(model_file)).parts:
        root = root.parent
    return [(name, root / _safe_member(name)) for name in manifest["files"]] + [(MANIFEST, root / MANIFEST)]


def export_c(model: str | os.PathLike[str], out: str | os.PathLike[str], *, family: str | None = None,
             input_size: tuple[int, int] | None = None, name: str | None = None,
             engine: str | None = None) -> CExport:
    """Write ``out/``: the model file(s), ``<ident>.h`` and the C post-processing library.

    Args:
        model: registry name, bundle (directory or .zip; verified like everywhere) or model file.
        out: the folder to write; it must not exist, be empty, or hold only what an earlier export
            wrote there (its hidden record lists those files; anything else is never deleted).
        family: decoder family of a bare model file.
        input_size: ``(width, height)`` for models with a dynamic input.
        name: C identifier of the model (default: derived from the model name); C and C++
            keywords and other reserved names are refused.
        engine: the engine that reads the model's tensor names (default: the model's own).

    Raises:
        BundleError, IntegrityError: a bundle that does not verify.
        InputError: bad arguments (``name`` not a usable C identifier), an unsupported family,
            ``out`` is a file or holds a file anyedge did not write (named).
        ModelLoadError: the model's outputs do not match what its decoder reads.
    """
    from ..engines import open_engine
    from ..tasks._loading import resolve_spec

    out = Path(out)
    if name is not None:
        check_c_ident(name)
    if (out / ".anyedge-export").is_file() and not (out / RECORD).is_file():
        raise InputError(f"{out} holds an export-c output of an older anyedge that did not list its files; "
                         "remove that folder or choose another --out")
    check_replaceable(out)  # only what an earlier export-c wrote there may be replaced
    spec = resolve_spec(model, task=TASK, family=family)
    chosen = engine or spec.engine
    eng = open_engine(spec.path, chosen)
    try:
        params = model_params(spec, eng.inputs, eng.outputs, engine=eng.name, input_size=input_size, ident=name)
    finally:
        eng.close()
    members = _bundle_members(spec) if spec.manifest else [(Path(spec.path).name, Path(spec.path))]
    lib = library_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; this is an ordinary output folder
        written = []
        for member, src in members:
            target = tmp / member
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(member)
        for f in LIBRARY_FILES:
            shutil.copyfile(lib / f, tmp / f)
            written.append(f)
        header = f"{params.ident}.h"
        if header in written:
            raise InputError(f"the header name {header} clashes with a model file; pass --name")
        (tmp / header).write_text(render_header(params))
        written.append(header)
        OutputDir(tmp).record(*(tmp / w for w in written))
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("export-c: %s -> %s", spec.name, out)
    return CExport(out=out, header=out / header, files=tuple(written), params=params)

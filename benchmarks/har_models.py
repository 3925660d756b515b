"""Helpers of the HAR benchmarks: the float twin in numpy and as ONNX (built without torch), results I/O."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["RESULTS", "FloatTwin", "write_results"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = HERE / "models"


class FloatTwin:
    """The float twin saved by ``converters/train_har.py`` (batch-norm folded into the convolutions)."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.arrays = {k: z[k] for k in z.files}
        self.labels = [str(s) for s in self.arrays.pop("labels")]
        self.pools = [int(p) for p in self.arrays["pools"]]

    @classmethod
    def for_dataset(cls, dataset: str) -> "FloatTwin":
        return cls(MODELS / f"float-{dataset.lower()}.npz")

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

    def to_onnx(self, path: Path, window: int) -> Path:
        """Write the twin as an ONNX graph (built with the onnx helper API; opset 17)."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

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
        onnx.save(model, str(path))
        return path


def write_results(stem: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``results/<stem>.json`` (meta + rows) and ``results/<stem>.csv`` (rows)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    jpath, cpath = RESULTS / f"{stem}.json", RESULTS / f"{stem}.csv"
    jpath.write_text(json.dumps({"meta": dict(meta), "rows": list(rows)}, indent=2) + "\n")
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(cpath, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return jpath, cpath

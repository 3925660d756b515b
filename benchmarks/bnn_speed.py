"""Per-window latency of the BNN kernels vs the float twin (numpy, ONNX Runtime), and memory of each.

    python benchmarks/bnn_speed.py [--repeats 300]

One window at a time (batch 1, one thread), medians over ``--repeats`` calls cycling through the
_TEST windows, after a warm-up. The ONNX file of the float twin is built in a temporary
directory with the onnx helper API and deleted afterwards. Writes
``results/bnn_speed.{json,csv}`` and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from anyedge.bundle import load_bundle
from anyedge.engines import open_engine
from anyedge.har import har_dataset_path, load_ts
from anyedge.registry import packaged_bundle
from anyedge.targets.bnn import kernels, reference
from anyedge.targets.bnn.format import read_bnn
from anyedge.tasks.activity_classifier import ActivityClassifier

from har_models import FloatTwin, write_results

DATASETS = [("RacketSports", "bnn-racketsports"), ("BasicMotions", "bnn-basicmotions")]


def _time(fn: Callable[[np.ndarray], object], windows: np.ndarray, repeats: int) -> tuple[float, float]:
    for i in range(min(20, repeats)):
        fn(windows[i % len(windows)][None])
    ts = np.empty(repeats)
    for i in range(repeats):
        w = windows[i % len(windows)][None]
        t0 = time.perf_counter()
        fn(w)
        ts[i] = time.perf_counter() - t0
    return float(np.median(ts) * 1e6), float(np.percentile(ts, 90) * 1e6)


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, name in DATASETS:
            test = load_ts(har_dataset_path(dataset, "test"))
            x = np.ascontiguousarray(test.x)
            bundle = load_bundle(packaged_bundle(name))
            model = read_bnn(bundle.model_path)
            arena = 4 * (((test.length * test.channels) + 3) // 4 + 2 * model.scratch_words)
            twin = FloatTwin.for_dataset(dataset)
            onnx_path = twin.to_onnx(Path(tmp) / f"{dataset}.onnx", test.length)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
            # the three float paths agree, and the BNN paths are bit-identical
            np.testing.assert_allclose(sess.run(None, {"x": x})[0], twin.forward(x), rtol=1e-4, atol=1e-4)
            assert (kernels.forward(model, x) == reference.forward(model, x)).all()
            eng = open_engine(bundle.model_path, "bnn")
            plan = kernels.prepare(model)
            clf = ActivityClassifier.create(name)
            cases = [
                ("bnn: Cython kernels", lambda w: kernels.forward(model, w, plan=plan), bundle.model_path.stat().st_size, arena),
                ("bnn: engine.run (validation + kernels)", lambda w: eng.run({"window": w}), bundle.model_path.stat().st_size, arena),
                ("bnn: ActivityClassifier.classify", lambda w: clf.classify(w[0]), bundle.model_path.stat().st_size, arena),
                ("bnn: numpy reference", lambda w: reference.forward(model, w), bundle.model_path.stat().st_size, arena),
                ("float twin: numpy", twin.forward, twin.param_bytes, twin.activation_bytes(test.length)),
                ("float twin: ONNX Runtime", lambda w: sess.run(None, {"x": w}), onnx_path.stat().st_size,
                 twin.activation_bytes(test.length)),
            ]
            for label, fn, mbytes, abytes in cases:
                med, p90 = _time(fn, x, args.repeats)
                rows.append({"dataset": dataset, "window": f"{test.length}x{test.channels}", "implementation": label,
                             "median_us": round(med, 2), "p90_us": round(p90, 2), "model_bytes": mbytes,
                             "activation_bytes": abytes})
            clf.close()
            eng.close()
    meta = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "onnxruntime": ort.__version__, "popcount": kernels.popcount_kind(), "repeats": args.repeats,
            "batch": 1, "threads": 1}
    j, c = write_results("bnn_speed", rows, meta)
    print(f"{'data set':<13} {'implementation':<40} {'median us':>10} {'p90 us':>9} {'model B':>8} {'act B':>7}")
    for r in rows:
        print(f"{r['dataset']:<13} {r['implementation']:<40} {r['median_us']:>10.1f} {r['p90_us']:>9.1f} "
              f"{r['model_bytes']:>8} {r['activation_bytes']:>7}")
    print(f"\npopcount: {meta['popcount']}\nwrote {j} and {c}")


if __name__ == "__main__":
    main()

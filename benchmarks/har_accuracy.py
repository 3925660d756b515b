"""Test accuracy and memory of the BNN, its float twin and a random forest on RacketSports and BasicMotions.

    python benchmarks/har_accuracy.py

Trains only the random forest (scikit-learn, seeded); the BNNs are the shipped bundles and the
float twins come from ``converters/train_har.py``. Writes ``results/har_accuracy.{json,csv}``
and prints a Markdown table.
"""

from __future__ import annotations

import pickle
import platform

import numpy as np

from anyedge.bundle import load_bundle
from anyedge.har import har_dataset_path, load_ts
from anyedge.registry import packaged_bundle
from anyedge.tasks.activity_classifier import ActivityClassifier

from har_models import FloatTwin, write_results

DATASETS = [("RacketSports", "bnn-racketsports"), ("BasicMotions", "bnn-basicmotions")]


def main() -> None:
    from sklearn import __version__ as skv
    from sklearn.ensemble import RandomForestClassifier

    rows = []
    for dataset, name in DATASETS:
        train = load_ts(har_dataset_path(dataset, "train"))
        test = load_ts(har_dataset_path(dataset, "test"))
        bundle = load_bundle(packaged_bundle(name))
        with ActivityClassifier.create(name) as clf:
            pred = np.array([r.class_index for r in clf.classify_batch(test.x)])
        mem = bundle.manifest["memory"]
        arena = 4 * (((test.length * test.channels) + 3) // 4 + 2 * mem["activation_words"])
        rows.append({"dataset": dataset, "model": "BNN (anyedge, packed)", "test_accuracy": float((pred == test.y).mean()),
                     "model_bytes": bundle.model_path.stat().st_size, "activation_bytes": arena,
                     "note": f"{mem['parameter_bytes']} parameter bytes + header/crc"})
        twin = FloatTwin.for_dataset(dataset)
        fpred = twin.forward(test.x).argmax(1)
        rows.append({"dataset": dataset, "model": "float twin (float32)", "test_accuracy": float((fpred == test.y).mean()),
                     "model_bytes": twin.param_bytes, "activation_bytes": twin.activation_bytes(test.length),
                     "note": "same layer shapes, float weights, ReLU, batch-norm folded"})
        rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
        rf.fit(train.x.reshape(len(train), -1), train.y)
        rpred = rf.predict(test.x.reshape(len(test), -1))
        nodes = sum(t.tree_.node_count for t in rf.estimators_)
        rows.append({"dataset": dataset, "model": "random forest (100 trees)", "test_accuracy": float((rpred == test.y).mean()),
                     "model_bytes": nodes * 16, "activation_bytes": 0,
                     "note": f"{nodes} nodes x 16 B (feature, threshold, 2 children, class); pickle {len(pickle.dumps(rf))} B"})
    meta = {"python": platform.python_version(), "machine": platform.machine(), "sklearn": skv}
    j, c = write_results("har_accuracy", rows, meta)
    print("| data set | model | test accuracy | model bytes | activation bytes | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['test_accuracy']:.3f} | {r['model_bytes']} | {r['activation_bytes']} | {r['note']} |")
    print(f"\nwrote {j} and {c}")


if __name__ == "__main__":
    main()

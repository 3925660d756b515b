"""Human activity recognition: sensor data loading and windowing.

Only numpy is imported here; the classifier task lives in :mod:`anyedge.tasks.activity_classifier`.
"""

from __future__ import annotations

from .data import TsDataset, data_root, har_dataset_path, load_ts, sliding_windows

__all__ = ["TsDataset", "load_ts", "sliding_windows", "data_root", "har_dataset_path"]

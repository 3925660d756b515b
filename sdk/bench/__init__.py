"""``anyedge bench``: speed, memory and fidelity of every model x engine x precision x threads, on the device.

    from anyedge.bench import BenchConfig, run_bench, report
    doc = run_bench(BenchConfig(models=("blazeface-short",), threads=(1, 2), images="photos/"))
    print(report.format_table(doc))

Only the standard library and numpy are imported here; engines load inside each row's process.
"""

from __future__ import annotations

from . import report
from .env import environment
from .runner import SCHEMA, BenchConfig, plan_units, run_bench

__all__ = ["BenchConfig", "run_bench", "plan_units", "environment", "report", "SCHEMA"]

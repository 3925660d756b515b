"""Render a benchmark: terminal table, ``bench.json``, ``bench.csv``, a PNG chart, and run-to-run ratios."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import InputError

__all__ = ["REQUIRED_ROW_KEYS", "load_result", "validate", "format_table", "format_profiles", "format_modes", "write_json", "write_csv",
           "write_png", "chart", "compare", "format_compare", "CSV_COLUMNS"]

REQUIRED_ROW_KEYS = ("model", "engine", "precision", "threads", "load_ms", "first_ms", "latency_ms", "engine_ms",
                     "throughput_ips", "peak_rss_mb", "size_bytes", "fidelity")
_STAT_KEYS = ("median", "p90", "p99")
_CSV_STATS = (*_STAT_KEYS, "min", "max")  # min / max: absent from runs saved before they were measured

CSV_COLUMNS = (
    "model", "engine", "device", "precision", "engine_precision", "threads", "task", "input", "source", "load_ms",
    "load_warm_ms", "first_ms", "latency_median_ms", "latency_p90_ms", "latency_p99_ms", "latency_min_ms",
    "latency_max_ms", "engine_median_ms", "engine_p90_ms", "engine_p99_ms", "engine_min_ms", "engine_max_ms",
    "runs", "timed_s", "profile_ms", "profile_engine_median_ms", "async_throughput_ips", "async_requests",
    "async_matches_serial", "async_latency_median_ms", "async_latency_min_ms", "async_latency_max_ms",
    "instances_engine_throughput_ips", "instances_engine", "overhead_ratio", "latency_cpu_median_ms", "engine_cpu_median_ms",
    "overhead_ratio_cpu", "kernel_median_ms", "throughput_ips", "peak_rss_mb",
    "size_bytes", "fidelity_f1", "fidelity_mean_iou", "fidelity_accuracy", "fidelity_agreement",
    "fidelity_cosine_mean", "fidelity_cosine_p5",
    "fidelity_reference", "fidelity_na", "error", "skipped",
)

#: What the table, the CSV and the chart show for a figure with nothing to measure it over
#: (``None`` in bench.json, with the reason in the fidelity's ``na``).
NA = "n/a"
_FID_FIGURES = ("f1", "mean_iou", "accuracy", "agreement", "cosine_mean", "cosine_p5")


# -- reading and checking -------------------------------------------------------------------
def validate(doc: Any, where: str = "bench result") -> dict[str, Any]:
    """Check a ``bench.json`` document has the keys the schema promises.

    Raises:
        InputError: naming the first missing or malformed part.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("env"), dict) or not isinstance(doc.get("rows"), list):
        raise InputError(f"{where}: expected an object with 'env' (object) and 'rows' (list)")
    for i, r in enumerate(doc["rows"]):
        if not isinstance(r, dict):
            raise InputError(f"{where}: row {i} is not an object")
        if "error" in r or "skipped" in r:
            continue
        missing = [k for k in REQUIRED_ROW_KEYS if k not in r]
        if missing:
            raise InputError(f"{where}: row {i} ({r.get('model')}) lacks {', '.join(missing)}")
        for k in ("latency_ms", "engine_ms"):
            if not isinstance(r[k], dict) or any(s not in r[k] for s in _STAT_KEYS):
                raise InputError(f"{where}: row {i} {k} must hold median, p90 and p99")
    return doc


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a ``bench.json``.

    Raises:
        InputError: missing file, not JSON, or not a bench result.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file (expected a bench.json from an earlier run)")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not JSON ({e})") from None
    return validate(doc, str(p))


# -- helpers --------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _scaled(v: Any, mul: float) -> str:
    """A latency in the table's unit; ``-`` when the run did not measure it (min / max of older runs)."""
    return _fmt(v * mul if isinstance(v, (int, float)) else None)


def _fid_main(r: Mapping[str, Any]) -> tuple[str, float | None]:
    """The fidelity figure a row is judged by: F1 vs float (detectors), accuracy (HAR).

    ``("F1", None)`` and the like when the figure was measured over nothing (n/a)."""
    f = r.get("fidelity") or {}
    if f.get("reference") == "self" and "accuracy" not in f:
        if "faces" in f and not f["faces"]:
            return "F1", None  # the float model found no face: agreeing with itself is vacuous
        return "F1", 1.0  # the float model itself
    if "f1" in f:
        return "F1", f["f1"]
    if "accuracy" in f:
        return "acc", f["accuracy"]
    if "cosine_mean" in f:
        return "cos", f["cosine_mean"]
    return "", None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _na_reason(r: Mapping[str, Any]) -> str:
    f = r.get("fidelity") or {}
    return str(f.get("na") or "measured over nothing")


def _is_figure(r: Mapping[str, Any]) -> bool:
    return "error" not in r and "skipped" not in r


def _lat_unit(rows: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    """Microseconds when every latency is below 1 ms (the BNN rows), else milliseconds."""
    meds = [r["latency_ms"]["median"] for r in rows if "latency_ms" in r]
    return ("us", 1000.0) if meds and max(meds) < 1.0 else ("ms", 1.0)


# -- table ----------------------------------------------------------------------------------
def format_table(doc: Mapping[str, Any]) -> str:
    """The terminal table: one line per row, detector and HAR rows in separate blocks."""
    env = doc.get("env", {})
    isa = ", ".join(k for k, v in (env.get("isa") or {}).items() if v) or "-"
    out = [f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores, {env.get('machine', '')}); {env.get('os', '')}; "
           f"Python {env.get('python', '')}; load average {env.get('load_average')}",
           f"ISA: {isa}",
           "engines: " + ", ".join(f"{k} {v}" for k, v in (env.get("engines") or {}).items())]
    rows = list(doc.get("rows", []))
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get("task", "face_detection" if "error" in r else "?"), []).append(r)
    for task, rs in groups.items():
        unit, mul = _lat_unit([r for r in rs if _is_figure(r)])
        out.append("")
        head = (f"{'model':30} {'engine':11} {'prec':7} {'thr':>3} {'load ms':>8} {'first ms':>8} "
                f"{'call ' + unit:>8} {'p90':>8} {'p99':>8} {'min':>8} {'max':>8} {'engine ' + unit:>9} {'x':>5} {'xcpu':>5} {'ips':>8} "
                f"{'RSS MB':>7} {'bytes':>9}  fidelity")
        out.append(head)
        out.append("-" * len(head))
        for r in rs:
            model = str(r.get("model", "?")) + (" *" if r.get("source") == "packaged" else "")
            name = f"{model[:30]:30} {r.get('engine', '?'):11} {str(r.get('precision'))[:7]:7} {r.get('threads', ''):>3}"
            if "error" in r:
                out.append(f"{name} error: {r['error'][:90]}")
                continue
            if "skipped" in r:
                out.append(f"{name} skipped: {r['skipped']}")
                continue
            lat, eng = r["latency_ms"], r["engine_ms"]
            kind, val = _fid_main(r)
            f = r.get("fidelity") or {}

            def fig(label: str, v: Any) -> str:
                return f"{label} {v:.3f}" if v is not None else f"{label} {NA}"

            fid = fig(kind, val) if kind else "-"
            if f.get("reference") == "self":
                fid = (fig(kind, val) + " " if kind == "acc" or val is None else "") + "float reference" + (
                    f" ({f['faces']} faces)" if "faces" in f else "")
            if "mean_iou" in f:
                fid += " " + fig("IoU", f["mean_iou"])
            if "agreement" in f:
                fid += " " + fig("agree", f["agreement"])
            if "cosine_p5" in f:
                fid += " " + fig("p5", f["cosine_p5"])
            if f.get("na"):
                fid += f" ({f['na']})"
            if r.get("engine_precision") and r["engine_precision"] != r.get("precision"):
                fid += f"  engine runs {r['engine_precision']}"
            if "kernel_ms" in r:
                fid += f"  kernels {r['kernel_ms']['median'] * mul:.1f} {unit}"
            out.append(
                f"{name} {_fmt(r['load_ms'], 1):>8} {_fmt(r['first_ms'], 2):>8} {lat['median'] * mul:8.2f} "
                f"{lat['p90'] * mul:8.2f} {lat['p99'] * mul:8.2f} {_scaled(lat.get('min'), mul):>8} "
                f"{_scaled(lat.get('max'), mul):>8} {eng['median'] * mul:9.2f} "
                f"{_fmt(r.get('overhead_ratio'), 2):>5} {_fmt(r.get('overhead_ratio_cpu'), 2):>5} "
                f"{_fmt(r['throughput_ips'], 1):>8} "
                f"{_fmt(r['peak_rss_mb'], 0):>7} {r['size_bytes']:>9}  {fid}")
    modes = format_modes(doc)
    if modes:
        out += ["", modes]
    from .advice import format_live_modes

    live = format_live_modes(doc)
    if live:
        out += ["", live]
    profiles = format_profiles(doc)
    if profiles:
        out += ["", profiles]
    if doc.get("notes"):
        out.append("")
        out += [f"note: {n}" for n in doc["notes"]]
    out.append("")
    out.append("call = the whole task call (detect / embed / classify), median (p90, p99, min, max beside it); "
               "engine = engine.run alone; x = call / engine "
               "(medians of wall time; xcpu: of the calling thread's CPU time); "
               "ips = inferences/s of THR instances in THR threads; fidelity vs the float model (F1 at IoU 0.5), "
               "embedders: cosine to the float model's embeddings (mean, p5 = 5th percentile), "
               "HAR: test-split accuracy; * = shipped in the anyedge package; "
               f"{NA} = nothing to measure it over (0 reference faces, 0 windows)")
    return "\n".join(out)


_OF = {"task": "whole task calls", "call": "whole task calls", "engine": "engine calls"}


def format_modes(doc: Mapping[str, Any]) -> str:
    """Throughput per mode of every row measured in more than one (``--async``), with each
    mode's per-call latency (median, mean, min, max, as ``benchmark_app`` gives them); ``""``
    otherwise."""
    out = []
    for r in doc.get("rows", []):
        modes = [m for m in r.get("throughput") or [] if isinstance(m, dict)] if _is_figure(r) else []
        if len(modes) < 2:
            continue
        out.append(f"  {r['model']} {r['engine']} {r['precision']} x{r['threads']}:")
        for m in modes:
            n = m.get("requests", m.get("instances", m.get("workers")))
            lat = m.get("latency_ms") or {}
            line = (f"    {str(m.get('mode')):9} {str(m.get('of')):6} x{n!s:<3} {_fmt(m.get('throughput_ips'), 1):>8}/s  "
                    f"{_fmt(lat.get('median')):>8} {_fmt(lat.get('mean')):>8} {_fmt(lat.get('min')):>8} "
                    f"{_fmt(lat.get('max')):>8}  ")
            if m.get("mode") == "async":
                same = "same outputs as serial calls" if m.get("matches_serial") else "OUTPUTS DIFFER from serial calls"
                line += f"{n} requests, {m.get('how', 'engine-native')}; {same}"
            elif m.get("mode") == "workers":
                line += f"{n} threads on the instance anyedge run --workers {n} opens, whole task calls"
            else:
                line += f"{n} instance(s) in as many threads, {_OF.get(str(m.get('of')), m.get('of'))}"
            out.append(line.rstrip())
    if not out:
        return ""
    head = (f"    {'mode':9} {'of':6} {'n':4} {'ips':>10}  {'median':>8} {'mean':>8} {'min':>8} {'max':>8}  "
            "(latency of each call or request, ms)")
    return "\n".join(["throughput per mode (inferences/s)", head, *out])


def format_profiles(doc: Mapping[str, Any], top: int = 5) -> str:
    """The ``top`` slowest operators of every profiled row (``--profile``), or why a row has none;
    ``""`` when no row was profiled."""
    out: list[str] = []
    for r in doc.get("rows", []):
        if not _is_figure(r) or not (r.get("profile") or r.get("profile_na")):
            continue
        what = f"{r['model']} {r['engine']} {r['precision']} x{r['threads']}"
        if not r.get("profile"):
            out += ["", f"{what}: no profile ({r['profile_na']})"]
            continue
        eng = (r.get("profile_engine_ms") or {}).get("median")
        total = r.get("profile_ms") or sum(o["ms"] for o in r["profile"])
        out += ["", f"{what}: {len(r['profile'])} operators, {total:.3f} ms per inference"
                    + (f" of {eng:.3f} ms engine time ({100 * total / eng:.0f} %)" if eng else "")
                    + f", {r.get('profile_runs', '?')} profiled runs",
                f"  {'ms':>8} {'%':>5}  {'precision':9} {'type':22} op"]
        for o in r["profile"][:top]:
            share = 100 * o["ms"] / total if total else 0.0
            out.append(f"  {o['ms']:8.3f} {share:5.1f}  {str(o['precision'])[:9]:9} {str(o['type'])[:22]:22} {o['op']}")
    if not out:
        return ""
    return "\n".join([f"slowest operators (the engine's own profiler, ms per inference, top {top})", *out[1:]])


# -- files ----------------------------------------------------------------------------------
def write_json(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    _atomic_write(p, (json.dumps(doc, indent=1) + "\n").encode())
    return p


def _csv_row(r: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: r.get(k) for k in CSV_COLUMNS if k in r and not isinstance(r.get(k), dict)}
    for block in ("latency", "engine", "kernel", "latency_cpu", "engine_cpu", "profile_engine"):
        st = r.get(f"{block}_ms") or {}
        for s in _CSV_STATS:
            if f"{block}_{s}_ms" in CSV_COLUMNS and s in st:
                out[f"{block}_{s}_ms"] = st[s]
    for m in r.get("throughput") or []:
        if isinstance(m, dict) and m.get("mode") == "async":
            lat = m.get("latency_ms") or {}
            out.update({"async_throughput_ips": m.get("throughput_ips"), "async_requests": m.get("requests"),
                        "async_matches_serial": m.get("matches_serial"), "async_latency_median_ms": lat.get("median"),
                        "async_latency_min_ms": lat.get("min"), "async_latency_max_ms": lat.get("max")})
        elif isinstance(m, dict) and m.get("mode") == "instances" and m.get("of") == "engine":
            out.update({"instances_engine_throughput_ips": m.get("throughput_ips"),
                        "instances_engine": m.get("instances")})
    f = r.get("fidelity") or {}
    for k in (*_FID_FIGURES, "reference", "na"):
        if k in f:
            out[f"fidelity_{k}"] = NA if f[k] is None and k in _FID_FIGURES else f[k]
    if _is_figure(r) and _fid_main(r)[1] is None and _fid_main(r)[0]:
        out[{"F1": "fidelity_f1", "acc": "fidelity_accuracy", "cos": "fidelity_cosine_mean"}[_fid_main(r)[0]]] = NA
        out["fidelity_na"] = _na_reason(r)
    return out


def write_csv(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """One line per row, nested timings flattened (``latency_median_ms``...)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for r in doc.get("rows", []):
        w.writerow(_csv_row(r))
    p = Path(path)
    _atomic_write(p, buf.getvalue().encode())
    return p


def write_png(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`chart` as a PNG.

    Raises:
        InputError: matplotlib is not installed (``pip install 'anyedge[bench]'``).
    """
    fig = chart(doc)  # raises InputError without matplotlib
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    p = Path(path)
    _atomic_write(p, buf.getvalue())
    return p


def chart(doc: Mapping[str, Any]) -> Any:
    """The matplotlib figure of a run: latency vs fidelity per model / engine / precision, and
    throughput vs threads.

    Colour = model, marker = engine, filled = fp32 / hollow = another precision; points that
    lose fidelity (F1 or agreement below 0.995) are labelled. A row whose fidelity is n/a has
    no point on the fidelity axis: it is listed under its panel as "n/a" with the reason.

    Raises:
        InputError: matplotlib is not installed (``pip install 'anyedge[bench]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
        from matplotlib.lines import Line2D
    except ImportError:
        raise InputError("the chart needs matplotlib: pip install 'anyedge[bench]' (or pass --no-png)") from None
    rows = [r for r in doc.get("rows", []) if _is_figure(r)]
    det = [r for r in rows if r.get("task") == "face_detection"]
    har = [r for r in rows if r.get("task") == "activity_classification"]
    profiled = [r for r in rows if r.get("profile")]
    panels = [p for p in (("det", det), ("har", har)) if p[1]] + [("tput", rows)] + (
        [("prof", profiled)] if profiled else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels) + 2.6, 5.8), squeeze=False)
    cmap = plt.get_cmap("tab20" if len({r["model"] for r in rows}) > 10 else "tab10")
    models = list(dict.fromkeys(r["model"] for r in rows))
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    markers = {e: "osD^v<>P*X"[i % 10] for i, e in enumerate(engines)}

    def prec(r: Mapping[str, Any]) -> str:
        return str(r["precision"])

    def style(r: Mapping[str, Any]) -> dict[str, Any]:
        c = colour[r["model"]]
        filled = prec(r) == "fp32"
        return {"marker": markers[r["engine"]], "color": c, "markerfacecolor": c if filled else "white",
                "markeredgecolor": c if not filled else "black", "markeredgewidth": 0.6 if filled else 1.8}

    def plain(axis: Any) -> None:
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())

    t1 = min((r["threads"] for r in rows), default=1)
    for ax, (kind, rs) in zip(axes[0], panels):
        if kind in ("det", "har"):
            unit, mul = _lat_unit(rs)
            pts = [r for r in rs if r["threads"] == t1]
            na = [r for r in pts if _fid_main(r)[1] is None]
            pts = [r for r in pts if _fid_main(r)[1] is not None]
            xs = [r["latency_ms"]["median"] * mul for r in pts]
            if na:  # no point on a fidelity axis for a figure measured over nothing
                import textwrap

                msg = "\n".join(textwrap.fill(f"fidelity {NA}: {r['model'][:28]} {r['engine']} {prec(r)} "
                                               f"({_na_reason(r)})", 70, subsequent_indent="    ") for r in na)
                alone = not pts
                ax.text(0.5 if alone else 0.01, 0.5 if alone else 0.01, msg, transform=ax.transAxes,
                        fontsize=8 if alone else 7, va="center" if alone else "bottom",
                        ha="center" if alone else "left", color="dimgrey")
                if alone:
                    ax.set_xticks([])
                    ax.set_yticks([])
            labelled = 0
            for r, x in zip(pts, xs):
                f = r.get("fidelity") or {}
                _, val = _fid_main(r)
                ax.plot([x], [val], linestyle="none", markersize=9, zorder=3, **style(r))
                lost = min(v for v in (f.get("f1"), f.get("agreement"), 1.0) if v is not None) < 0.995
                if lost or kind == "har":  # neighbours' labels alternate above and below their points
                    ax.annotate(f"{r['model'][:28]}\n{r['engine']} {prec(r)}", (x, val), textcoords="offset points",
                                xytext=(7, 4 if labelled % 2 else -20), fontsize=7.5)
                    labelled += 1
            log = bool(xs) and max(xs) / max(min(xs), 1e-9) > 8
            if log:
                ax.set_xscale("log")
            plain(ax.xaxis)
            ax.margins(x=0.2, y=0.15)
            ax.set_xlabel(f"latency of the whole call, median, {t1} thread ({unit}{', log scale' if log else ''})")
            if kind == "det":
                ax.set_ylabel("F1 vs the float model's faces (IoU 0.5)")
                ax.set_title("Face detectors: speed vs agreement with float")
            else:
                ax.set_ylabel("test-split accuracy")
                ax.set_title("Activity models: speed vs accuracy")
            ax.grid(True, which="major", alpha=0.3)
        elif kind == "prof":
            _profile_bars(ax, rs[:4], colour)
        else:
            series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
            first: dict[tuple[str, str, str], Mapping[str, Any]] = {}
            for r in rs:
                key = (r["model"], r["engine"], prec(r))
                series.setdefault(key, []).append((r["threads"], r["throughput_ips"]))
                first.setdefault(key, r)
            for key, pts2 in series.items():
                pts2.sort()
                ax.plot([t for t, _ in pts2], [v for _, v in pts2], linewidth=1.3, markersize=7,
                        linestyle="-" if key[2] == "fp32" else "--", **style(first[key]))
            ys = [r["throughput_ips"] for r in rs]
            if ys and max(ys) / max(min(ys), 1e-9) > 8:
                ax.set_yscale("log")
            plain(ax.yaxis)
            ax.set_xlabel("threads (one instance per thread)")
            ax.set_ylabel("throughput, inferences/s")
            ax.set_title("Throughput vs threads")
            ax.set_xticks(sorted({r["threads"] for r in rs}))
            ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], linestyle="none", marker="s", markersize=8, color=colour[m], label=m) for m in models]
    handles += [Line2D([], [], linestyle="none", label=" ")]
    handles += [Line2D([], [], linestyle="none", marker=markers[e], markersize=8, color="grey", label=e)
                for e in engines]
    handles += [Line2D([], [], linestyle="none", marker="o", markersize=8, color="grey", markerfacecolor="grey",
                       label="fp32 (filled, solid line)"),
                Line2D([], [], linestyle="none", marker="o", markersize=8, color="grey", markerfacecolor="white",
                       markeredgewidth=1.8, label="other precision (hollow, dashed)")]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    env = doc.get("env", {})
    fig.suptitle(f"anyedge bench on {env.get('cpu', '?')} ({env.get('cores', '?')} cores), {env.get('time', '')}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (6.4 * len(panels) + 2.6), 1))
    return fig


def _profile_bars(ax: Any, rows: Sequence[Mapping[str, Any]], colour: Mapping[str, Any], top: int = 5) -> None:
    """``--profile``: the ``top`` slowest operators of (up to four) profiled rows as horizontal bars,
    each labelled with its type and the precision it ran in."""
    labels, values, colours = [], [], []
    for r in rows:
        for o in r["profile"][:top]:
            labels.append(f"{str(o['op'])[:22]} {o['type']} {o['precision']}")
            values.append(o["ms"])
            colours.append(colour[r["model"]])
        labels.append(f"^ {r['model'][:24]} {r['engine']} {r['precision']} x{r['threads']} "
                      f"(all: {r.get('profile_ms', 0):.2f} ms)")
        values.append(0.0)
        colours.append("white")
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, values, color=colours, edgecolor="black", linewidth=0.4)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=6.5)
    ax.set_xlabel("ms per inference (the engine's own profiler)")
    ax.set_title(f"Slowest operators, top {top} per row")
    ax.grid(True, axis="x", alpha=0.3)


# -- comparison -----------------------------------------------------------------------------
def _key(r: Mapping[str, Any]) -> tuple[str, str, str, int]:
    return (r["model"], r["engine"], str(r["precision"]), int(r["threads"]))


def _ratio(new: Any, old: Any) -> float | None:
    try:
        return round(float(new) / float(old), 3) if old and not math.isnan(float(old)) else None
    except (TypeError, ValueError):
        return None


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Ratios new / old for every row present in both runs (matched by model, engine, precision, threads).

    Returns:
        ``{"same_device": bool, "old_cpu", "new_cpu", "rows": [...], "only_old": [...], "only_new": [...]}``;
        a ratio above 1 means the new run takes longer (latency, load, memory) or does more
        (throughput); fidelity is given as new minus old.
    """
    validate(dict(old), "old result")
    validate(dict(new), "new result")
    o = {_key(r): r for r in old["rows"] if _is_figure(r)}
    n = {_key(r): r for r in new["rows"] if _is_figure(r)}
    rows = []
    for k in [k for k in n if k in o]:
        a, b = o[k], n[k]
        _, fa = _fid_main(a)
        _, fb = _fid_main(b)
        rows.append({
            "model": k[0], "engine": k[1], "precision": k[2], "threads": k[3],
            "latency": _ratio(b["latency_ms"]["median"], a["latency_ms"]["median"]),
            "latency_p90": _ratio(b["latency_ms"]["p90"], a["latency_ms"]["p90"]),
            "engine_latency": _ratio(b["engine_ms"]["median"], a["engine_ms"]["median"]),
            "throughput": _ratio(b["throughput_ips"], a["throughput_ips"]),
            "load": _ratio(b["load_ms"], a["load_ms"]),
            "peak_rss": _ratio(b["peak_rss_mb"], a["peak_rss_mb"]),
            "size": _ratio(b["size_bytes"], a["size_bytes"]),
            "fidelity_delta": round(fb - fa, 4) if fa is not None and fb is not None else None,
            "old_latency_ms": a["latency_ms"]["median"], "new_latency_ms": b["latency_ms"]["median"],
        })
    oe, ne = old.get("env", {}), new.get("env", {})
    return {"same_device": (oe.get("cpu"), oe.get("host")) == (ne.get("cpu"), ne.get("host")),
            "old_cpu": oe.get("cpu"), "new_cpu": ne.get("cpu"), "old_time": oe.get("time"),
            "new_time": ne.get("time"), "rows": rows,
            "only_old": [list(k) for k in o if k not in n], "only_new": [list(k) for k in n if k not in o]}


def format_compare(c: Mapping[str, Any], threshold: float = 1.10) -> str:
    """The comparison as a table; ``REGRESSION`` marks latency ratios above ``threshold`` on one device."""
    same = c["same_device"]
    out = [f"new ({c['new_time']}, {c['new_cpu']}) / old ({c['old_time']}, {c['old_cpu']})",
           "same device: ratios above 1 in latency are regressions" if same else
           "different devices: ratios say how the new device differs from the old one",
           "",
           f"{'model':30} {'engine':11} {'prec':7} {'thr':>3} {'latency':>8} {'p90':>6} {'engine':>7} "
           f"{'ips':>6} {'load':>6} {'RSS':>6} {'size':>6} {'d fid':>7}  old -> new ms"]
    for r in c["rows"]:
        flag = "  REGRESSION" if same and r["latency"] is not None and r["latency"] > threshold else ""
        out.append(f"{r['model'][:30]:30} {r['engine']:11} {r['precision'][:7]:7} {r['threads']:>3} "
                   f"{_fmt(r['latency']):>8} {_fmt(r['latency_p90']):>6} {_fmt(r['engine_latency']):>7} "
                   f"{_fmt(r['throughput']):>6} {_fmt(r['load']):>6} {_fmt(r['peak_rss']):>6} {_fmt(r['size']):>6} "
                   f"{_fmt(r['fidelity_delta'], 3):>7}  {r['old_latency_ms']:.3f} -> {r['new_latency_ms']:.3f}{flag}")
    for k in c["only_old"]:
        out.append(f"only in old: {' '.join(map(str, k))}")
    for k in c["only_new"]:
        out.append(f"only in new: {' '.join(map(str, k))}")
    return "\n".join(out)

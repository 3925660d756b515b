"""Signing a bundle folder or zip in place (``anyedge sign``, ``convert --sign``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import BundleError
from .keys import fingerprint_of, load_private_key
from .trust import SIGNATURE, SignatureInfo, signed_message

__all__ = ["sign_bundle"]


def sign_bundle(bundle: str | os.PathLike[str], key: str | os.PathLike[str]) -> SignatureInfo:
    """Sign a bundle folder or zip in place with the private key file ``key``.

    The bundle is verified first (digests only: it may be unsigned or signed by another key;
    an existing signature is replaced). A folder gets ``manifest.sig`` by temp file and
    rename; a zip is rewritten beside itself with the member added and renamed over the old
    one, so it stays a zip and is never half-written.

    Raises:
        BundleError, IntegrityError: the bundle does not verify.
        InputError: ``key`` is not an Ed25519 private key.
    """
    from ..bundle import load_bundle
    from ..manifest import manifest_digest

    priv = load_private_key(key)
    path = Path(bundle)
    b = load_bundle(path, trusted_keys=False)  # digests only: any verified bundle may be (re)signed
    digest = manifest_digest(b.manifest)
    info = SignatureInfo(fingerprint_of(priv.public_key()), digest, priv.sign(signed_message(digest)))
    data = (json.dumps(info.to_json(), indent=1) + "\n").encode()
    if path.is_dir():
        _replace_file(path / SIGNATURE, data)
    else:
        _rezip_with(path, data)
    return info


def _replace_file(target: Path, data: bytes) -> None:
    from ..registry import file_mode

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rezip_with(path: Path, sig: bytes) -> None:
    """Copy zip ``path`` with ``manifest.sig`` set beside its manifest, then rename over it."""
    from ..bundle import MANIFEST

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777)
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            names = [i.filename for i in src.infolist()]
            manifest = next((n for n in names if n == MANIFEST or n.endswith("/" + MANIFEST)), None)
            if manifest is None:
                raise BundleError(f"{path} has no {MANIFEST}")
            sig_name = manifest[: -len(MANIFEST)] + SIGNATURE
            for info in src.infolist():
                if info.filename == sig_name:
                    continue
                with src.open(info) as r, dst.open(info, "w") as w:
                    shutil.copyfileobj(r, w, 1 << 20)
            dst.writestr(sig_name, sig)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

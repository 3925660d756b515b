"""Signed bundles: a device loads only what a key it trusts has signed.

A bundle's ``manifest_sha256`` is an unkeyed digest: whoever edits a bundle can recompute it.
A signature binds that digest (which covers every file's sha256 and size) to an Ed25519 key.

Where the signature lives: ``manifest.sig``, a small JSON file beside ``manifest.json`` (at
the bundle folder's root, or next to ``manifest.json`` inside a zip). It is not listed in the
manifest's ``files`` (it signs them), so signing never changes the manifest or its digest::

    {"format": "anyedge-signature/1", "algorithm": "ed25519",
     "key": "<sha256 of the raw 32-byte public key, hex>",
     "manifest_sha256": "<the manifest digest that was signed>",
     "signature": "<base64 Ed25519 signature of 'anyedge-signature/1 manifest_sha256 <digest>'>"}

Keys are PEM files: ``anyedge.key`` (PKCS#8 private key, mode 0600) and ``anyedge.pub``
(SubjectPublicKeyInfo), as ``anyedge keys new --out KEYDIR`` writes them; OpenSSL reads and
writes the same format (``openssl genpkey -algorithm ed25519``).

Trust: ``ANYEDGE_TRUSTED_KEYS`` (folders of ``*.pub`` files and/or ``.pub`` files, separated
by ``os.pathsep``), ``trusted_keys=`` on a task's ``create`` or ``--trust`` on the command
line. With trust configured, :func:`anyedge.bundle.load_bundle` refuses an unsigned bundle, one
signed by another key, a bad signature and a bundle changed after signing, each with an
:class:`~anyedge.errors.IntegrityError` that says which. Without it, bundles load as before
(digest check only). The ``cryptography`` package (``pip install 'anyedge[sign]'``) is
imported only when a key is made, a bundle signed or a signature checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from ..bundle import _MAX_SIGNATURE, MANIFEST, SIGNATURE, _read_regular
from ..errors import BundleError, EngineUnavailableError, InputError, IntegrityError

__all__ = [
    "SIGNATURE",
    "TRUST_ENV",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "TrustedKeys",
    "SignatureInfo",
    "new_key",
    "sign_bundle",
    "read_signature",
    "trusted_keys_from",
    "check_trust",
    "fingerprint_of",
    "check_private_key",
]

TRUST_ENV = "ANYEDGE_TRUSTED_KEYS"
PRIVATE_KEY = "anyedge.key"
PUBLIC_KEY = "anyedge.pub"
_FORMAT = "anyedge-signature/1"
_MAX_KEY = 16384

#: What ``trusted_keys=`` accepts: a folder or ``.pub`` file, several of them, or loaded keys.
TrustSpec = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], "TrustedKeys"]


def _crypto() -> Any:
    """The Ed25519 and serialization modules of ``cryptography`` (the ``sign`` extra)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise EngineUnavailableError("signed bundles need the cryptography package: "
                                     "pip install 'anyedge[sign]'") from e
    return ed25519, serialization


def _message(digest: str) -> bytes:
    return f"{_FORMAT} manifest_sha256 {digest}".encode()


def fingerprint_of(public_key: Any) -> str:
    """sha256 (hex) of an Ed25519 public key's raw 32 bytes: how keys are named in signatures."""
    _, ser = _crypto()
    raw = public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# -- keys -------------------------------------------------------------------------------------
def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically with ``mode``; refuse (never replace) an existing file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if path exists: an existing key is never overwritten
        except FileExistsError:
            raise InputError(f"{path} already exists; refusing to overwrite a key") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def new_key(out: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """Make an Ed25519 key pair in folder ``out``: ``anyedge.key`` (0600) and ``anyedge.pub``.

    Returns:
        (private key path, public key path, fingerprint).

    Raises:
        InputError: ``out`` is a file, or already holds a key (nothing is overwritten).
        EngineUnavailableError: ``cryptography`` is not installed.
    """
    ed25519, ser = _crypto()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is an existing file; expected a folder for the key pair")
    priv_path, pub_path = out / PRIVATE_KEY, out / PUBLIC_KEY
    for p in (priv_path, pub_path):
        if p.exists():
            raise InputError(f"{p} already exists; refusing to overwrite a key (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    pub = key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    _write_new(priv_path, pem, 0o600)
    _write_new(pub_path, pub, 0o644)
    return priv_path, pub_path, fingerprint_of(key.public_key())


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > _MAX_KEY:
            raise InputError(f"{path} is larger than {_MAX_KEY} bytes; expected a PEM {what}")
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _load_private(path: str | os.PathLike[str]) -> Any:
    ed25519, ser = _crypto()
    p = Path(path)
    try:
        key = ser.load_pem_private_key(_read_key_file(p, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{p}: expected an unencrypted PEM Ed25519 private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{p}: expected an Ed25519 private key, got {type(key).__name__}")
    return key


def check_private_key(path: str | os.PathLike[str]) -> str:
    """The fingerprint of the Ed25519 private key file ``path`` (checks it before a long job).

    Raises:
        InputError: not an unencrypted PEM Ed25519 private key.
        EngineUnavailableError: ``cryptography`` is not installed.
    """
    return fingerprint_of(_load_private(path).public_key())


def _load_public(path: Path) -> Any:
    ed25519, ser = _crypto()
    try:
        key = ser.load_pem_public_key(_read_key_file(path, "public key"))
    except (ValueError, TypeError) as e:
        raise InputError(f"{path}: expected a PEM Ed25519 public key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InputError(f"{path}: expected an Ed25519 public key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys a device trusts, by fingerprint, and where they were read from."""

    keys: Mapping[str, Any]
    source: str

    def describe(self) -> str:
        return f"{len(self.keys)} trusted key(s) from {self.source}"


def trusted_keys_from(spec: TrustSpec | None = None) -> TrustedKeys | None:
    """Load the trusted keys ``spec`` names, or ``$ANYEDGE_TRUSTED_KEYS`` when ``spec`` is None.

    Each entry is a folder (every ``*.pub`` in it) or a public-key file; a string may hold
    several separated by ``os.pathsep``. Returns None when no trust is configured.

    Raises:
        InputError: an entry is missing, a folder holds no ``*.pub``, a key file is not an
            Ed25519 public key.
        EngineUnavailableError: ``cryptography`` is not installed.
    """
    if isinstance(spec, TrustedKeys):
        return spec
    if spec is None:
        text = os.environ.get(TRUST_ENV, "")
        if not text.strip():
            return None
        entries, source = [e for e in text.split(os.pathsep) if e.strip()], text
    elif isinstance(spec, (str, os.PathLike)):
        entries = [e for e in os.fspath(spec).split(os.pathsep) if e.strip()]
        source = os.fspath(spec)
    else:
        entries = [os.fspath(e) for e in spec]
        source = os.pathsep.join(entries)
    if not entries:
        raise InputError(f"trusted keys: expected a folder of *.pub files or .pub files, got {spec!r}")
    files: list[Path] = []
    for entry in entries:
        p = Path(entry).expanduser()
        if p.is_dir():
            found = sorted(p.glob("*.pub"))
            if not found:
                raise InputError(f"trusted keys: folder {p} holds no *.pub public key")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"trusted keys: {p} does not exist; expected a folder of *.pub files or a .pub file")
    keys = {}
    for f in files:
        key = _load_public(f)
        keys[fingerprint_of(key)] = key
    return TrustedKeys(keys, source)


# -- the signature file -----------------------------------------------------------------------
@dataclass(frozen=True)
class SignatureInfo:
    """A parsed ``manifest.sig`` (not yet checked against any key)."""

    key: str
    manifest_sha256: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "algorithm": "ed25519", "key": self.key,
                "manifest_sha256": self.manifest_sha256,
                "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def parse(cls, data: bytes, where: str) -> "SignatureInfo":
        try:
            d = json.loads(data.decode("utf-8"))
            if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("algorithm") != "ed25519":
                raise ValueError(f"expected format {_FORMAT!r} and algorithm 'ed25519'")
            key, digest = d["key"], d["manifest_sha256"]
            if not all(isinstance(v, str) and len(v) == 64 for v in (key, digest)):
                raise ValueError("key and manifest_sha256 must be 64 hex digits")
            sig = base64.b64decode(d["signature"], validate=True)
            if len(sig) != 64:
                raise ValueError(f"an Ed25519 signature has 64 bytes, got {len(sig)}")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{where}: malformed signature file ({e})") from None
        return cls(key, digest, sig)


def read_signature(root: str | os.PathLike[str]) -> SignatureInfo | None:
    """The ``manifest.sig`` of an unpacked bundle folder, or None when it is unsigned."""
    p = Path(root) / SIGNATURE
    if not os.path.lexists(p):
        return None
    try:  # a regular file, never read through a link or past the cap
        data = _read_regular(Path(root), SIGNATURE, _MAX_SIGNATURE)
    except BundleError as e:
        raise IntegrityError(f"{p}: malformed signature file ({e})") from None
    return SignatureInfo.parse(data, str(p))


def check_trust(bundle: str | os.PathLike[str], root: Path, manifest: Mapping[str, Any],
                trusted_keys: TrustSpec | None | bool = None) -> SignatureInfo | None:
    """Refuse ``bundle`` unless a trusted key signed its manifest (when trust is configured).

    ``root`` is the unpacked folder and ``manifest`` its verified manifest; ``trusted_keys``
    is what :func:`trusted_keys_from` takes, or False to check nothing (a bundle about to be
    signed). Returns the checked signature, or None when no trust is configured.

    Raises:
        IntegrityError: unsigned, unknown signer, bad signature, or changed after signing.
    """
    from ..manifest import manifest_digest

    if trusted_keys is False:
        return None
    trust = trusted_keys_from(trusted_keys)
    if trust is None:
        return None  # no trust configured: digests only, whatever manifest.sig holds
    sig = read_signature(root)
    if sig is None:
        raise IntegrityError(f"bundle {bundle} is unsigned; only bundles signed by {trust.describe()} load "
                             f"(sign it: anyedge sign {bundle} --key KEY)")
    key = trust.keys.get(sig.key)
    if key is None:
        raise IntegrityError(f"bundle {bundle} is signed by key {sig.key}, which is not among the "
                             f"{trust.describe()}")
    digest = manifest_digest(manifest)
    if sig.manifest_sha256 != digest:
        raise IntegrityError(f"bundle {bundle} changed after it was signed: its manifest digest is {digest}, "
                             f"the signature covers {sig.manifest_sha256}")
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(sig.signature, _message(digest))
    except InvalidSignature:
        raise IntegrityError(f"bundle {bundle} has a bad signature: {SIGNATURE} does not verify under "
                             f"key {sig.key}") from None
    return sig


# -- signing ----------------------------------------------------------------------------------
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

    priv = _load_private(key)
    path = Path(bundle)
    b = load_bundle(path, trusted_keys=False)  # digests only: any verified bundle may be (re)signed
    digest = manifest_digest(b.manifest)
    info = SignatureInfo(fingerprint_of(priv.public_key()), digest, priv.sign(_message(digest)))
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


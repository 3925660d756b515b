"""Ed25519 key pairs and the keys a device trusts (``anyedge keys new``, ``--trust``, ``$ANYEDGE_TRUSTED_KEYS``).

Keys are PEM files: ``anyedge.key`` (PKCS#8 private key, mode 0600) and ``anyedge.pub``
(SubjectPublicKeyInfo), as ``anyedge keys new --out KEYDIR`` writes them; OpenSSL reads and
writes the same format (``openssl genpkey -algorithm ed25519``). The ``cryptography`` package
(``pip install 'anyedge[sign]'``) is imported only when a key is made or read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from ..errors import EngineUnavailableError, InputError

__all__ = ["TRUST_ENV", "PRIVATE_KEY", "PUBLIC_KEY", "TrustSpec", "TrustedKeys", "new_key", "trusted_keys_from",
           "fingerprint_of", "check_private_key", "load_private_key"]

TRUST_ENV = "ANYEDGE_TRUSTED_KEYS"
PRIVATE_KEY = "anyedge.key"
PUBLIC_KEY = "anyedge.pub"
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


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key in PEM file ``path``.

    Raises:
        InputError: not an unencrypted PEM Ed25519 private key.
        EngineUnavailableError: ``cryptography`` is not installed.
    """
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
    return fingerprint_of(load_private_key(path).public_key())


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

"""Checking a bundle's signature against the trusted keys while it loads.

Where the signature lives: ``manifest.sig``, a small JSON file beside ``manifest.json`` (at
the bundle folder's root, or next to ``manifest.json`` inside a zip). It is not listed in the
manifest's ``files`` (it signs them), so signing never changes the manifest or its digest::

    {"format": "anyedge-signature/1", "algorithm": "ed25519",
     "key": "<sha256 of the raw 32-byte public key, hex>",
     "manifest_sha256": "<the manifest digest that was signed>",
     "signature": "<base64 Ed25519 signature of 'anyedge-signature/1 manifest_sha256 <digest>'>"}

:func:`anyedge.bundle.load_bundle` calls :func:`check_trust`; this module imports nothing of
:mod:`anyedge.bundle` (the bundle reads its members through :mod:`anyedge.inputs`, as this
module reads the signature), so the arrow points one way: bundle -> trust.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import BundleError, IntegrityError
from ..inputs import read_member
from .keys import TrustSpec, trusted_keys_from

__all__ = ["SIGNATURE", "MAX_SIGNATURE", "SignatureInfo", "read_signature", "check_trust", "signed_message"]

SIGNATURE = "manifest.sig"  # a detached signature beside the manifest, not listed in it
MAX_SIGNATURE = 4096
_FORMAT = "anyedge-signature/1"


def signed_message(digest: str) -> bytes:
    """The bytes an Ed25519 signature of manifest digest ``digest`` covers."""
    return f"{_FORMAT} manifest_sha256 {digest}".encode()


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
        data = read_member(Path(root), SIGNATURE, MAX_SIGNATURE)
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
        key.verify(sig.signature, signed_message(digest))
    except InvalidSignature:
        raise IntegrityError(f"bundle {bundle} has a bad signature: {SIGNATURE} does not verify under "
                             f"key {sig.key}") from None
    return sig

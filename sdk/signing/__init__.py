"""Signed bundles: a device loads only what a key it trusts has signed.

A bundle's ``manifest_sha256`` is an unkeyed digest: whoever edits a bundle can recompute it.
A signature binds that digest (which covers every file's sha256 and size) to an Ed25519 key.

Where the signature lives: ``manifest.sig`` beside ``manifest.json`` (:mod:`.trust` describes
it); keys are PEM files (:mod:`.keys`).

Trust: ``ANYEDGE_TRUSTED_KEYS`` (folders of ``*.pub`` files and/or ``.pub`` files, separated
by ``os.pathsep``), ``trusted_keys=`` on a task's ``create`` or ``--trust`` on the command
line. With trust configured, :func:`anyedge.bundle.load_bundle` refuses an unsigned bundle, one
signed by another key, a bad signature and a bundle changed after signing, each with an
:class:`~anyedge.errors.IntegrityError` that says which. Without it, bundles load as before
(digest check only). The ``cryptography`` package (``pip install 'anyedge[sign]'``) is
imported only when a key is made, a bundle signed or a signature checked.

The rooms: :mod:`.keys` (key pairs, trusted keys), :mod:`.trust` (the signature file and the
check :func:`anyedge.bundle.load_bundle` runs), :mod:`.sign` (signing a bundle), :mod:`.cli`
(``anyedge keys new``, ``anyedge sign`` and every command's ``--trust``). Arrows point one
way: bundle -> trust -> keys; sign -> bundle.
"""

from __future__ import annotations

from .keys import (PRIVATE_KEY, PUBLIC_KEY, TRUST_ENV, TrustedKeys, TrustSpec, check_private_key, fingerprint_of,
                   new_key, trusted_keys_from)
from .sign import sign_bundle
from .trust import SIGNATURE, SignatureInfo, check_trust, read_signature

__all__ = [
    "SIGNATURE",
    "TRUST_ENV",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "TrustSpec",
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

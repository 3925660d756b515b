"""``anyedge keys new``, ``anyedge sign`` and the ``--trust`` option of every command that loads a bundle.

    anyedge keys new --out keys/
    anyedge sign model.zip --key keys/anyedge.key
    anyedge detect photo.jpg --model model.zip --trust keys/anyedge.pub

``--trust KEYS`` (repeatable; a folder of ``*.pub`` files or a ``.pub`` file) means
``ANYEDGE_TRUSTED_KEYS=KEYS`` for that one command, child processes included (``anyedge
bench`` runs each row in its own): :func:`trust_scope` sets it while the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

__all__ = ["add_parsers", "add_trust_argument", "trust_scope", "signature_status"]


def _trust_path(text: str) -> str:
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"expected a folder of *.pub public keys or a .pub file, got {text!r} "
                                         "(no such file or folder)")
    return text


def add_trust_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--trust KEYS`` to a command that loads bundles (the one definition every command shares)."""
    p.add_argument("--trust", action="append", type=_trust_path, default=None, metavar="KEYS",
                   help="load only bundles signed by these public keys: a folder of *.pub files or a .pub file; "
                        "repeatable (default: $ANYEDGE_TRUSTED_KEYS; unset: bundles are checked against their "
                        "digests only)")


@contextlib.contextmanager
def trust_scope(args: argparse.Namespace) -> Iterator[None]:
    """While a parsed command runs, its ``--trust`` values are ``$ANYEDGE_TRUSTED_KEYS``."""
    from .keys import TRUST_ENV

    values = getattr(args, "trust", None)
    if not values:
        yield
        return
    old = os.environ.get(TRUST_ENV)
    os.environ[TRUST_ENV] = os.pathsep.join(values)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(TRUST_ENV, None)
        else:
            os.environ[TRUST_ENV] = old


def signature_status(root: Path) -> dict[str, Any]:
    """How a bundle that just loaded stands: unsigned, signed (not checked) or signed by a trusted key."""
    from ..errors import IntegrityError
    from .keys import trusted_keys_from
    from .trust import read_signature

    try:
        sig = read_signature(root)
    except IntegrityError as e:  # only reachable without trust: load_bundle refuses it under trust
        return {"status": f"malformed signature ({e})", "key": None}
    if sig is None:
        return {"status": "unsigned", "key": None}
    # load_bundle already refused anything that fails the configured trust
    checked = trusted_keys_from() is not None
    return {"status": "signed, trusted" if checked else "signed, not checked", "key": sig.key}


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from .keys import new_key

    priv, pub, fp = new_key(args.out)
    if args.json:
        print(json.dumps({"private_key": str(priv), "public_key": str(pub), "fingerprint": fp}))
    else:
        print(f"private key {priv} (keep it secret; mode 0600)")
        print(f"public key  {pub} (copy it to the devices' trusted keys)")
        print(f"fingerprint {fp}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from .sign import sign_bundle

    info = sign_bundle(args.bundle, args.key)
    if args.json:
        print(json.dumps({"bundle": args.bundle, "key": info.key, "manifest_sha256": info.manifest_sha256}))
    else:
        print(f"{args.bundle}: signed by {info.key} (manifest {info.manifest_sha256[:16]}...)")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``keys`` (``keys new``) and ``sign`` to an argparse sub-parser set."""
    k = sub.add_parser("keys", help="make an Ed25519 key pair for signing bundles",
                       epilog="example:\n  anyedge keys new --out keys/")
    ks = k.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    p = ks.add_parser("new", help="write KEYDIR/anyedge.key (private, 0600) and KEYDIR/anyedge.pub",
                      description="Make an Ed25519 key pair: KEYDIR/anyedge.key (PEM, mode 0600) signs bundles, "
                                  "KEYDIR/anyedge.pub goes to the devices that trust them. An existing key is "
                                  "never overwritten.",
                      epilog="example:\n  anyedge keys new --out keys/")
    p.add_argument("--out", required=True, metavar="KEYDIR", help="folder for the key pair (created when missing)")
    p.add_argument("--json", action="store_true", help="print the paths and fingerprint as one JSON object")
    p.set_defaults(func=_cmd_keys_new)

    p = sub.add_parser("sign", help="sign a bundle (folder or .zip) with a private key",
                       description="Verify a bundle and write manifest.sig beside its manifest.json: an Ed25519 "
                                   "signature of the manifest digest (which pins every file) and the signer's key "
                                   "fingerprint. A zip stays a zip (rewritten, then renamed over the old one); an "
                                   "earlier signature is replaced.",
                       epilog="example:\n  anyedge sign scrfd.zip --key keys/anyedge.key")
    p.add_argument("bundle", help="bundle directory or .zip")
    p.add_argument("--key", required=True, help="private key file (anyedge keys new writes KEYDIR/anyedge.key)")
    p.add_argument("--json", action="store_true", help="print the signer and digest as one JSON object")
    p.set_defaults(func=_cmd_sign)

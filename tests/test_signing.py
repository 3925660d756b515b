"""Signed bundles: Ed25519 signatures over the manifest digest, refused unless a trusted key
signed them (when trust is configured), for folder and zip bundles, face and BNN models,
through the API (``trusted_keys=``, ``$ANYEDGE_TRUSTED_KEYS``) and the command line (``--trust``)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from anyedge.bundle import is_bundle_zip, load_bundle, write_bundle, zip_bundle
from anyedge.errors import EngineUnavailableError, InputError, IntegrityError
from anyedge.manifest import Embedding, Manifest, ModelCard, manifest_digest
from anyedge.registry import REGISTRY, packaged_bundle, resolve_model
from anyedge.signing import (SIGNATURE, TRUST_ENV, new_key, read_signature, sign_bundle, trusted_keys_from)

from .bundle_support import reseal, yunet_bundle
from .conftest import SMOKE, read_rgb
from .har_support import har_file as ts_path
from .test_manifest import face_manifest

CLI = [sys.executable, "-m", "anyedge.cli"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(autouse=True)
def _no_ambient_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two key pairs: ``a`` and ``b`` (the private key files; ``*_pub`` the public ones)."""
    out = {}
    for name in ("a", "b"):
        priv, pub, _ = new_key(tmp_path / f"keys-{name}")
        out[name], out[f"{name}_pub"] = priv, pub
    return out


@pytest.fixture()
def bnn(tmp_path: Path) -> Path:
    dst = tmp_path / "rs"
    shutil.copytree(packaged_bundle("bnn-racketsports"), dst)  # type: ignore[arg-type]
    return dst


@pytest.fixture()
def face(tmp_path: Path) -> Path:
    return yunet_bundle(tmp_path / "yunet")


# -- keys -------------------------------------------------------------------------------------
def test_new_key_is_private_atomic_and_never_overwritten(tmp_path: Path) -> None:
    priv, pub, fp = new_key(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    assert list(trusted_keys_from(pub).keys) == [fp]  # type: ignore[union-attr]
    before = priv.read_bytes()
    with pytest.raises(InputError, match="already exists; refusing to overwrite"):
        new_key(tmp_path / "k")
    assert priv.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["anyedge.key", "anyedge.pub"]  # no temp files
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="existing file"):
        new_key(tmp_path / "f")


@pytest.mark.parametrize("spec, message", [
    ("missing-folder", "does not exist"),
    ("empty-folder", "holds no \\*.pub"),
    ("not-a-key.pub", "expected a PEM Ed25519 public key"),
])
def test_bad_trust_configuration_is_a_clear_error(tmp_path: Path, bnn: Path, spec: str, message: str) -> None:
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "not-a-key.pub").write_text("hello")
    with pytest.raises(InputError, match=message):
        load_bundle(bnn, trusted_keys=tmp_path / spec)


# -- round trips ------------------------------------------------------------------------------
def test_signed_bnn_folder_loads_under_trust_and_classifies_the_same(bnn: Path, keys: dict[str, Path]) -> None:
    from anyedge.har.data import load_ts
    from anyedge.tasks.activity_classifier import ActivityClassifier

    x = load_ts(ts_path("RacketSports", "test")).x[:8]
    with ActivityClassifier.create(bnn) as plain:
        want = [r.label for r in plain.classify_batch(x)]
    info = sign_bundle(bnn, keys["a"])
    assert read_signature(bnn) == info
    assert SIGNATURE not in json.loads((bnn / "manifest.json").read_text())["files"]
    with ActivityClassifier.create(bnn, trusted_keys=keys["a_pub"]) as clf:
        assert [r.label for r in clf.classify_batch(x)] == want
    load_bundle(bnn)  # no trust configured: digests only, as before


def test_signed_face_bundles_load_under_trust(face: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    from anyedge.tasks.face_detector import FaceDetector
    from anyedge.tasks.face_embedder import FaceEmbedder

    sign_bundle(face, keys["a"])
    with FaceDetector.create(face, trusted_keys=keys["a_pub"]) as det:
        assert len(det.detect(read_rgb(SMOKE / "astronaut.png"))) == 1
    with pytest.raises(IntegrityError, match="not among"):
        FaceDetector.create(face, trusted_keys=keys["b_pub"])

    info = REGISTRY["mobilefacenet"]
    path = resolve_model("mobilefacenet")[0]
    emb = tmp_path / "mfn"
    write_bundle(emb, {"model" + path.suffix: path},
                 Manifest(model=ModelCard(info.name, info.family, info.task), model_file="model" + path.suffix,
                          input=info.input, embedding=Embedding(128, 0.35)))
    with pytest.raises(IntegrityError, match="unsigned"):
        FaceEmbedder.create(emb, trusted_keys=keys["a_pub"])
    sign_bundle(emb, keys["a"])
    with FaceEmbedder.create(emb, trusted_keys=keys["a_pub"]) as e:
        assert e.dim == 128

    from anyedge.recognition.pipeline import FacePipeline

    with FacePipeline.create(face, emb, trusted_keys=keys["a_pub"]) as fp:
        assert fp.embedder.dim == 128
    with pytest.raises(IntegrityError, match="not among"):
        FacePipeline.create(face, emb, trusted_keys=keys["b_pub"])


def test_signed_zip_stays_a_zip_and_its_signature_is_unpacked(bnn: Path, keys: dict[str, Path],
                                                             tmp_path: Path) -> None:
    z = zip_bundle(bnn, tmp_path / "rs.zip")
    sign_bundle(z, keys["a"])
    assert zipfile.is_zipfile(z) and is_bundle_zip(z)
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", SIGNATURE, "model.bnn"]
    b = load_bundle(z, trusted_keys=keys["a_pub"])  # the signature travels into the unpacked cache folder
    assert (b.root / SIGNATURE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    sign_bundle(z, keys["b"])  # re-signing replaces the signature
    with zipfile.ZipFile(z) as zf:
        assert zf.namelist().count(SIGNATURE) == 1
    load_bundle(z, trusted_keys=keys["b_pub"])
    with pytest.raises(IntegrityError, match="not among"):
        load_bundle(z, trusted_keys=keys["a_pub"])


def test_signed_zip_with_a_top_folder(bnn: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    sign_bundle(bnn, keys["a"])
    z = tmp_path / "top.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in bnn.iterdir():
            zf.write(f, f"rs/{f.name}")
    assert (load_bundle(z, trusted_keys=keys["a_pub"]).root / SIGNATURE).is_file()


def test_zip_bundle_of_a_signed_folder_keeps_the_signature(bnn: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    sign_bundle(bnn, keys["a"])
    load_bundle(zip_bundle(bnn, tmp_path / "rs.zip"), trusted_keys=keys["a_pub"])


# -- refusals ---------------------------------------------------------------------------------
def _flip_signature(bundle: Path) -> None:
    d = json.loads((bundle / SIGNATURE).read_text())
    sig = bytearray(base64.b64decode(d["signature"]))
    sig[5] ^= 1
    d["signature"] = base64.b64encode(bytes(sig)).decode()
    (bundle / SIGNATURE).write_text(json.dumps(d))


def _flip_model_byte(bundle: Path) -> None:
    p = bundle / "model.bnn"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))


def _reseal_labels(bundle: Path) -> None:
    reseal(bundle, lambda m: m.__setitem__("labels", list(reversed(m["labels"]))))


def _reseal_model(bundle: Path) -> None:
    _flip_model_byte(bundle)
    data = (bundle / "model.bnn").read_bytes()
    import hashlib

    reseal(bundle, lambda m: m["files"].__setitem__("model.bnn", hashlib.sha256(data).hexdigest()))


def _garble_signature(bundle: Path) -> None:
    (bundle / SIGNATURE).write_text("{not json")


@pytest.mark.parametrize("tamper, message", [
    (None, "is unsigned"),
    ("other-key", "is signed by key [0-9a-f]{64}, which is not among the 1 trusted key"),
    (_flip_signature, "has a bad signature"),
    (_flip_model_byte, "model.bnn has sha256 .* the bundle was modified"),
    (_reseal_labels, "changed after it was signed"),
    (_reseal_model, "changed after it was signed"),
    (_garble_signature, "malformed signature file"),
])
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_refused_under_trust(bnn: Path, keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             tamper: Any, message: str, kind: str) -> None:
    if tamper == "other-key":
        sign_bundle(bnn, keys["b"])
    elif tamper is not None:
        sign_bundle(bnn, keys["a"])
        tamper(bnn)
    target = bnn
    if kind == "zip":
        target = tmp_path / "rs.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for f in bnn.iterdir():
                zf.write(f, f.name)
    monkeypatch.setenv(TRUST_ENV, str(keys["a_pub"]))
    with pytest.raises(IntegrityError, match=message):
        load_bundle(target)
    from anyedge.tasks.activity_classifier import ActivityClassifier

    with pytest.raises(IntegrityError, match=message):
        ActivityClassifier.create(target)


def test_a_resealed_edit_passes_the_digest_but_not_the_signature(bnn: Path, keys: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest digest is unkeyed: an edited, re-sealed bundle still "verifies" without trust."""
    sign_bundle(bnn, keys["a"])
    _reseal_labels(bnn)
    load_bundle(bnn)
    monkeypatch.setenv(TRUST_ENV, str(keys["a_pub"].parent))
    with pytest.raises(IntegrityError, match="changed after it was signed"):
        load_bundle(bnn)


def test_key_rotation_either_trusted_key_is_accepted(bnn: Path, keys: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(keys["a_pub"], trusted / "old.pub")
    shutil.copy(keys["b_pub"], trusted / "new.pub")
    for key in ("a", "b"):
        sign_bundle(bnn, keys[key])
        load_bundle(bnn, trusted_keys=trusted)
        load_bundle(bnn, trusted_keys=[keys["a_pub"], keys["b_pub"]])
        monkeypatch.setenv(TRUST_ENV, os.pathsep.join([str(keys["a_pub"]), str(keys["b_pub"])]))
        load_bundle(bnn)
        monkeypatch.delenv(TRUST_ENV)
    (trusted / "old.pub").unlink()  # key a retired
    sign_bundle(bnn, keys["a"])
    with pytest.raises(IntegrityError, match="not among the 1 trusted key"):
        load_bundle(bnn, trusted_keys=trusted)


def test_a_garbled_signature_matters_only_under_trust(bnn: Path, keys: dict[str, Path]) -> None:
    sign_bundle(bnn, keys["a"])
    _garble_signature(bnn)
    load_bundle(bnn)  # no trust: digests only, as before
    r = cli("inspect", str(bnn))
    assert r.returncode == 0 and "signature  malformed signature" in r.stdout, r.stderr
    sign_bundle(bnn, keys["a"])  # re-signing repairs it
    load_bundle(bnn, trusted_keys=keys["a_pub"])


def test_signing_refuses_a_bundle_that_does_not_verify(bnn: Path, keys: dict[str, Path]) -> None:
    _flip_model_byte(bnn)
    with pytest.raises(IntegrityError, match="modified"):
        sign_bundle(bnn, keys["a"])
    assert not (bnn / SIGNATURE).exists()
    with pytest.raises(InputError, match="expected an unencrypted PEM Ed25519 private key"):
        sign_bundle(bnn, keys["a_pub"])


def test_missing_cryptography_names_the_extra(bnn: Path, keys: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)  # as if not installed
    with pytest.raises(EngineUnavailableError, match=r"pip install 'anyedge\[sign\]'"):
        load_bundle(bnn, trusted_keys=keys["a_pub"])
    load_bundle(bnn)  # without trust, no cryptography is needed


def test_import_anyedge_does_not_import_cryptography() -> None:
    code = "import sys, anyedge; print(sorted(m for m in sys.modules if 'crypto' in m or 'signing' in m))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# -- command line -----------------------------------------------------------------------------
def test_cli_transcript_keys_sign_trust_tamper_refuse(tmp_path: Path) -> None:
    """The README's "Signed bundles" commands, on a face detector zip and a BNN folder."""
    kd, z = tmp_path / "keys", tmp_path / "yunet.zip"
    src = tmp_path / "src"
    write_bundle(src, {"model.onnx": resolve_model("yunet-n-320")[0]}, face_manifest())
    zip_bundle(src, z)
    photo = str(SMOKE / "astronaut.png")

    r = cli("keys", "new", "--out", str(kd), "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert Path(made["private_key"]) == kd / "anyedge.key" and len(made["fingerprint"]) == 64
    r = cli("keys", "new", "--out", str(kd))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "refusing to overwrite" in r.stderr

    r = cli("inspect", str(z))
    assert r.returncode == 0 and "signature  unsigned" in r.stdout, r.stderr
    r = cli("detect", photo, "--model", str(z), "--trust", str(kd / "anyedge.pub"))
    assert r.returncode == 2 and "is unsigned" in r.stderr and r.stderr.count("\n") == 1, r.stderr

    r = cli("sign", str(z), "--key", str(kd / "anyedge.key"))
    assert r.returncode == 0 and made["fingerprint"] in r.stdout, r.stderr
    r = cli("inspect", str(z))
    assert f"signed, not checked, key {made['fingerprint']}" in r.stdout
    r = cli("inspect", str(z), "--trust", str(kd))
    assert r.returncode == 0 and f"signature  signed, trusted, key {made['fingerprint']}" in r.stdout, r.stderr
    r = cli("inspect", str(z), "--trust", str(kd), "--json")
    assert json.loads(r.stdout)["signature"] == {"status": "signed, trusted", "key": made["fingerprint"]}
    r = cli("detect", photo, "--model", str(z), "--trust", str(kd / "anyedge.pub"), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["faces"]) == 1
    r = cli("detect", photo, "--model", str(z), "--json", env={TRUST_ENV: str(kd)})
    assert r.returncode == 0, r.stderr

    # tamper: edit the manifest inside the zip and re-seal its digest
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(z) as zin, zipfile.ZipFile(edited, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "manifest.json":
                m = json.loads(data)
                m["decoder"]["score_threshold"] = 0.01
                m["manifest_sha256"] = manifest_digest(m)
                data = json.dumps(m).encode()
            zout.writestr(name, data)
    r = cli("detect", photo, "--model", str(edited), "--json")
    assert r.returncode == 0  # without trust the re-sealed digest still passes
    for cmd in (["detect", photo, "--model", str(edited)], ["inspect", str(edited)],
                ["export-c", str(edited), "--out", str(tmp_path / "app")],
                ["bench", str(edited), "--runs", "1", "--warmup", "0", "--no-png", "--out", str(tmp_path / "b")]):
        r = cli(*cmd, "--trust", str(kd))
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("anyedge: error:")]
        assert len(errors) == 1 and "changed after it was signed" in errors[0], (cmd, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "app").exists()

    r = cli("detect", photo, "--model", str(z), "--trust", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def test_cli_har_commands_take_trust(bnn: Path, tmp_path: Path) -> None:
    kd = tmp_path / "keys"
    assert cli("keys", "new", "--out", str(kd)).returncode == 0
    ts = str(ts_path("RacketSports", "test"))
    header = tmp_path / "m.h"
    r = cli("har", "classify", ts, "--model", str(bnn), "--json", "--trust", str(kd))
    assert r.returncode == 2 and "is unsigned" in r.stderr
    r = cli("har", "export-c", "--model", str(bnn), "--out", str(header), "--trust", str(kd))
    assert r.returncode == 2 and "is unsigned" in r.stderr and not header.exists()
    assert cli("sign", str(bnn), "--key", str(kd / "anyedge.key")).returncode == 0
    r = cli("har", "classify", ts, "--model", str(bnn), "--json", "--trust", str(kd))
    assert r.returncode == 0, r.stderr
    labels = {json.loads(line)["label"] for line in r.stdout.splitlines()}
    assert labels and labels <= set(json.loads((bnn / "manifest.json").read_text())["labels"])
    r = cli("har", "export-c", "--model", str(bnn), "--out", str(header), "--trust", str(kd))
    assert r.returncode == 0 and header.is_file(), r.stderr
    samples = "\n".join(",".join(["0.1"] * 6) for _ in range(40)) + "\n"
    r = subprocess.run([*CLI, "har", "stream", "--model", str(bnn), "--json", "--trust", str(kd)], input=samples,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    _reseal_labels(bnn)
    r = subprocess.run([*CLI, "har", "stream", "--model", str(bnn), "--json", "--trust", str(kd)], input=samples,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "changed after it was signed" in r.stderr


@pytest.mark.parametrize("command", [
    ["detect"], ["run", "--source", "x"], ["verify", "a", "b"], ["calibrate-threshold", "p.csv"],
    ["gallery", "enroll", "n", "i.jpg"], ["gallery", "identify", "i.jpg"], ["har", "classify", "f.ts"],
    ["har", "stream"], ["har", "export-c", "--model", "m", "--out", "o"], ["har", "models"], ["bench"],
    ["inspect", "b"], ["export-c", "m", "--out", "o"],
])
def test_every_command_that_loads_a_bundle_takes_trust(command: list[str]) -> None:
    from anyedge.cli import build_parser

    args = build_parser().parse_args([*command, "--trust", str(SMOKE)])
    assert args.trust == [str(SMOKE)]


def test_convert_sign_writes_a_signed_zip_even_where_trust_is_configured(tmp_path: Path, faces_calib: Path) -> None:
    kd = tmp_path / "keys"
    _, pub, fp = new_key(kd)
    out = tmp_path / "yunet.zip"
    r = cli("convert", "yunet", "--target", "intel-cpu", "--precision", "fp16", "--calib", str(faces_calib),
            "--out", str(out), "--sign", str(kd / "anyedge.key"), "--json", env={TRUST_ENV: str(kd)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["signed_by"] == fp
    assert zipfile.is_zipfile(out)
    assert read_signature(load_bundle(out, trusted_keys=pub).root).key == fp  # type: ignore[union-attr]


def test_convert_sign_fails_early_on_a_bad_key(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("nope")
    r = cli("convert", "yunet-n-320", "--target", "arm-cpu", "--out", str(tmp_path / "out"),
            "--calib", str(SMOKE), "--sign", str(tmp_path / "bad.key"))
    assert r.returncode == 2 and "expected an unencrypted PEM Ed25519 private key" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_symlinked_signature_is_refused_under_trust(bnn: Path, keys: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid signature kept outside the bundle and linked in is still a link: refused, never followed."""
    sign_bundle(bnn, keys["a"])
    outside = tmp_path / "elsewhere.sig"
    shutil.move(bnn / SIGNATURE, outside)
    (bnn / SIGNATURE).symlink_to(outside)
    monkeypatch.setenv(TRUST_ENV, str(keys["a_pub"]))
    with pytest.raises(IntegrityError, match="symlink"):
        load_bundle(bnn)

"""Generated C stays inert whatever a bundle or a model file says.

A bundle is untrusted: its manifest's enums are checked when it is parsed, and every string that
reaches a generated header (model name, model file, labels, tensor names, provenance) is written
so that it can neither end its literal or comment nor start a line of its own. Each header is
compiled with gcc (``-std=c99``, so trigraphs are live) and the strings it holds are printed back
by the compiled program and compared byte for byte with what went in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from c_toolchains import host_toolchain  # targets/checks/ (pytest pythonpath)

from anyedge.apps.export_c import TensorInfo, export_c, render_header
from anyedge.bundle import load_bundle, write_bundle
from anyedge.cli import main as cli_main
from anyedge.errors import BundleError
from anyedge.manifest import Manifest, ModelCard, manifest_digest
from anyedge.registry import REGISTRY, packaged_bundle, resolve_model
from anyedge.targets.bnn import C_DIR as BNN_DIR

FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")

# what a bundle author may write where a name goes
PAYLOADS = {
    "injection": "x */\n#error INJECTED\n/* y",
    "newline": "a\nb",
    "close-comment": "a */ int injected; /* b",
    "open-comment": "a /* b",
    "trigraph": "a??/",  # ??/ is a backslash under -std=c99: it would swallow a closing quote
    "trigraph-line": "a ??/\n#error TRIGRAPH",
    "quote-backslash": 'a"b\\',
    "nul": "a\x00b",
    "non-ascii": "caf\u00e9 \u2603 \U0001f600",
    "control": "a\r\tb\x1b\x7f",
}
NAMES = {**PAYLOADS, "keyword": "int", "std-type": "size_t", "library": "aepost_model"}


def _cc() -> str:
    chain = host_toolchain()
    if chain is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler (CI installs gcc)")
        pytest.skip("no C compiler (set CC or install gcc)")
    return chain.cc


def _run_c(body: str, includes: list[str], dirs: list[Path], work: Path) -> bytes:
    """Compile ``main`` (``body``) after ``#include``-ing ``includes``; run it; its stdout."""
    src = work / "check.c"
    src.write_text("#include <stdio.h>\n#include <string.h>\n" + "".join(f'#include "{h}"\n' for h in includes)
                   + "static void put(const char *s) { size_t n = strlen(s); printf(\"%u:\", (unsigned)n); "
                     "fwrite(s, 1, n, stdout); putchar('\\n'); }\n"
                   + "int main(void) {\n" + body + "\n    (void)put;\n    return 0;\n}\n")
    exe = work / "check"
    cmd = [_cc(), *FLAGS, *(f"-I{d}" for d in dirs), str(src), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-3000:]}"
    return subprocess.run([str(exe)], capture_output=True, check=True).stdout


def _put(*texts: str) -> bytes:
    """What ``put`` prints for each string: the bytes up to a NUL, as C sees them."""
    out = b""
    for t in texts:
        b = t.encode("utf-8").split(b"\0")[0]
        out += f"{len(b)}:".encode() + b + b"\n"
    return out


def _code(header: Path, ident: str | None = None) -> str:
    """The header without its comments (as the compiler strips them), the BNN ``ident`` made neutral."""
    proc = subprocess.run([_cc(), "-std=c99", "-fpreprocessed", "-dD", "-E", "-P", "-x", "c", str(header)],
                          capture_output=True, text=True, check=True)
    code = proc.stdout
    if ident is not None:  # where the BNN header uses it: aebnn_<ident>_*, aebnn_model_<ident>, AEBNN_<IDENT>_*
        i, u = re.escape(ident), re.escape(ident.upper())
        code = re.sub(rf"\b(aebnn_model_){i}\b|\b(aebnn_){i}(?=_)|\b(AEBNN_(?:MODEL_)?){u}(?=_)",
                      lambda m: "".join(g or "" for g in m.groups()) + "IDENT", code)
    return code


def _inert(header: str) -> None:
    """Every line of a generated header is printable ASCII, so nothing can hide in it."""
    for line in header.split("\n"):
        assert all(" " <= c <= "~" for c in line), repr(line)
        assert "??" not in line, line


# -- the escaper both generators use ----------------------------------------------------------


@pytest.mark.parametrize("payload", sorted(PAYLOADS) + ["empty", "digits-after-escape"])
def test_c_string_and_comment_hold_any_text(tmp_path, payload):
    from anyedge.targets.ctext import c_comment, c_string

    text = {**PAYLOADS, "empty": "", "digits-after-escape": "\n0123\x007"}[payload]
    lit, comment = c_string(text), c_comment(text)
    _inert(lit + comment)
    assert "*/" not in comment and "/*" not in comment
    (tmp_path / "t.h").write_text(f"/* {comment} */\nstatic const char text[] = {lit}; /* {comment} */\n")
    got = _run_c("    fwrite(text, 1, sizeof text - 1, stdout);", ["t.h"], [tmp_path], tmp_path)
    assert got == text.encode("utf-8")  # every byte, NULs included


# -- manifests -------------------------------------------------------------------------------


def _face_manifest(**fields: Any) -> Manifest:
    info = REGISTRY["yunet-n-320"]
    card = ModelCard(fields.pop("name", info.name), info.family, info.task, license=info.license)
    return Manifest(model=card, model_file=fields.pop("model_file", "model.onnx"), input=info.input,
                    decoder=dict(info.decoder), **{"engine": "onnxruntime", "target": "arm-cpu",
                                                   "precision": "fp32", **fields})


def _face_bundle(out: Path, **fields: Any) -> Path:
    m = _face_manifest(**fields)
    write_bundle(out, {m.model_file: resolve_model("yunet-n-320")[0]}, m)
    return out


def _copy(bundle: Path, out: Path) -> Path:
    out.mkdir()
    for f in bundle.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


def _reseal(bundle: Path, field: str, value: Any) -> None:
    """Edit one manifest field and seal the digest again, as a bundle author can."""
    m = json.loads((bundle / "manifest.json").read_text())
    *parents, last = field.split(".")
    node = m
    for p in parents:
        node = node[p]
    node[last] = value
    m["manifest_sha256"] = manifest_digest(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.fixture(scope="module")
def face_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _face_bundle(tmp_path_factory.mktemp("face") / "yunet")


ENUMS = ["target", "engine", "precision", "device", "model.family"]


@pytest.mark.parametrize("payload", ["injection", "newline", "trigraph", "nul", "non-ascii"])
@pytest.mark.parametrize("field", ENUMS)
def test_manifest_enum_with_anything_else_is_refused_naming_the_field(face_bundle, tmp_path, field, payload):
    bundle = _copy(face_bundle, tmp_path / "b")
    _reseal(bundle, field, PAYLOADS[payload])
    with pytest.raises(BundleError, match=rf"manifest\.json: {re.escape(field)}: expected "):
        load_bundle(bundle)


@pytest.mark.parametrize("field, value", [
    ("target", "arm-cpu"), ("target", "host"), ("target", "bnn"), ("target", "intel-npu"),
    ("precision", "int8-mixed"), ("precision", "int8w"), ("precision", "bf16"), ("precision", "binary"),
    ("device", "CPU"), ("device", "NPU"), ("device", "GPU.1"), ("device", "AUTO"), ("device", "AUTO:GPU,CPU"),
    ("device", "AUTO:-CPU"), ("device", "MULTI:GPU.0,GPU.1"), ("device", "HETERO:NPU,CPU"),
])
def test_known_enum_values_load(field, value):
    m = _face_manifest(**{field: value})
    assert getattr(Manifest.from_json(m.to_json(), require_hash=False), field) == value


@pytest.mark.parametrize("field, value", [
    ("target", ""), ("target", "ARM-CPU"), ("target", "test"), ("precision", "int4"), ("precision", 8),
    ("device", "cpu"), ("device", "GPU."), ("device", "MULTI:"), ("device", "AUTO:TPU"), ("device", "GPU.\u0661"),
])
def test_unknown_enum_values_are_refused(field, value):
    with pytest.raises(BundleError, match=rf"^{field}: expected "):
        _face_manifest(**{field: value})


def test_every_value_a_converter_writes_validates():
    from anyedge.targets import TARGETS

    for name, profile in TARGETS.items():
        for recipe in profile.recipes.values():
            for precision in recipe.precisions:
                m = _face_manifest(target=name, engine=recipe.engine, precision=precision, device=recipe.device,
                                   providers=recipe.providers)
                assert Manifest.from_json(m.to_json(), require_hash=False) == m


# -- anyedge export-c ----------------------------------------------------------------------------


def test_export_c_refuses_a_bundle_whose_target_is_c(face_bundle, tmp_path, capsys):
    bundle = _copy(face_bundle, tmp_path / "b")
    _reseal(bundle, "target", PAYLOADS["injection"])
    rc = cli_main(["export-c", str(bundle), "--out", str(tmp_path / "e")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert re.match(r"anyedge: error: \S+manifest\.json: target: expected one of", err.strip().splitlines()[-1])
    assert not (tmp_path / "e").exists()


def _exported(capsys, args: list[str]) -> dict[str, Any]:
    assert cli_main(["export-c", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def plain_det(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """export-c's header for the plain bundle as ``det``."""
    root = tmp_path_factory.mktemp("plain")
    export_c(_face_bundle(root / "b"), root / "e", name="det")
    return root / "e" / "det.h"


@pytest.mark.parametrize("payload", sorted(NAMES))
def test_export_c_header_is_inert_whatever_the_model_name(tmp_path, capsys, plain_det, payload):
    bundle = _face_bundle(tmp_path / "b", name=NAMES[payload])
    info = _exported(capsys, [str(bundle), "--out", str(tmp_path / "e")])  # the identifier from the name
    header = Path(info["header"])
    _inert(header.read_text())
    u = info["ident"].upper()
    got = _run_c(f"    put({u}_FAMILY); put({u}_MODEL_FILE); (void){info['ident']}.family;",
                 ["anyedge_post.h", header.name], [tmp_path / "e"], tmp_path)
    assert got == _put("yunet", "model.onnx")
    # the name only ever reaches comments, on their line: without them, the header is the plain bundle's
    det = export_c(bundle, tmp_path / "d", name="det").header
    assert _code(det) == _code(plain_det)
    assert len(det.read_text().splitlines()) == len(plain_det.read_text().splitlines())


@pytest.mark.parametrize("payload", [p for p in sorted(PAYLOADS) if "\0" not in PAYLOADS[p]])
def test_export_c_header_holds_the_model_file_name_exactly(tmp_path, capsys, payload):
    member = re.sub(r"[/\\]", "_", PAYLOADS[payload]) + ".onnx"  # a member name is a file name
    bundle = _face_bundle(tmp_path / "b", model_file=member)
    info = _exported(capsys, [str(bundle), "--out", str(tmp_path / "e"), "--name", "det"])
    _inert(Path(info["header"]).read_text())
    got = _run_c("    put(DET_MODEL_FILE);", ["anyedge_post.h", "det.h"], [tmp_path / "e"], tmp_path)
    assert got == _put(member)


def test_render_header_holds_any_tensor_name_and_provenance_exactly(tmp_path):
    """Tensor names come from the model file, which a bundle author writes too."""
    p = export_c("yunet-n-320", tmp_path / "e", name="det").params
    names = list(PAYLOADS.values())
    outs = tuple(dataclasses.replace(o, name=names[i % len(names)] + str(i)) for i, o in enumerate(p.outputs))
    hostile = dataclasses.replace(
        p, name=names[0], model_file=names[1], engine=names[2], input=TensorInfo(names[3], p.input.shape,
                                                                                  names[4], None),
        outputs=outs, slots=tuple(o.name for o in outs[: len(p.slots)]),
        provenance={k: v for k, v in zip(PAYLOADS, PAYLOADS.values())})
    header = render_header(hostile)
    _inert(header)
    (tmp_path / "e" / "det.h").write_text(header)
    n = len(outs)
    body = (f"    size_t i;\n    put(DET_MODEL_FILE); put(DET_ENGINE); put(DET_INPUT_NAME); put(DET_INPUT_DTYPE);\n"
            f"    for (i = 0; i < {n}; i++) put(DET_OUTPUT_NAMES[i]);\n"
            f"    for (i = 0; i < DET_NUM_SLOTS; i++) put(DET_SLOT_NAMES[i]);\n    (void)det;")
    got = _run_c(body, ["anyedge_post.h", "det.h"], [tmp_path / "e"], tmp_path)
    assert got == _put(names[1], names[2], names[3], names[4], *(o.name for o in outs),
                       *(o.name for o in outs[: len(p.slots)]))


@pytest.mark.parametrize("name", ["int", "char", "class", "_x", "__y", "_Bool", "size_t", "int32_t", "NULL",
                                  "INT8_MAX", "SIZE_MAX", "aepost_model", "AEPOST_H", "aebnn_run", "a-b",
                                  "9x", "", "x" * 64])
def test_export_c_name_must_be_a_usable_c_identifier(tmp_path, capsys, name):
    rc = cli_main(["export-c", "yunet-n-320", "--out", str(tmp_path / "e"), "--name", name])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("anyedge: error: --name must be a C identifier")
    assert not (tmp_path / "e").exists()


def test_export_c_name_that_is_usable_compiles(tmp_path, capsys):
    info = _exported(capsys, ["yunet-n-320", "--out", str(tmp_path / "e"), "--name", "Int"])
    assert info["ident"] == "Int"
    assert _run_c("    put(INT_FAMILY); (void)Int;", ["anyedge_post.h", "Int.h"], [tmp_path / "e"],
                  tmp_path) == _put("yunet")


# -- anyedge har export-c ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def racketsports() -> tuple[Any, float]:
    """The shipped RacketSports network and its score scale."""
    from anyedge.targets.bnn.format import read_bnn

    shipped = load_bundle(packaged_bundle("bnn-racketsports"))
    return read_bnn(shipped.model_path), shipped.info.output.score_scale


def _har_header(out: Path, net: tuple[Any, float], name: str, labels: list[str]) -> tuple[Path, str]:
    """``anyedge har export-c`` of ``net`` renamed and relabelled: (header, the identifier it chose)."""
    from anyedge.converters.bnn import write_bnn_bundle

    write_bnn_bundle(net[0], out / "b", name=name, labels=labels, score_scale=net[1])
    header = out / "model.h"
    assert cli_main(["har", "export-c", "--model", str(out / "b"), "--out", str(header)]) == 0
    ident = re.search(r"static const char \*const aebnn_(\w+)_labels\[", header.read_text()).group(1)
    return header, ident


@pytest.mark.parametrize("payload", sorted(NAMES))
def test_har_export_c_header_is_inert_and_holds_the_labels_exactly(tmp_path, capsys, racketsports, payload):
    labels = [f"{NAMES[payload]}{i}" for i in range(racketsports[0].n_classes)]
    (tmp_path / "x").mkdir()
    header, ident = _har_header(tmp_path / "x", racketsports, NAMES[payload], labels)
    capsys.readouterr()
    _inert(header.read_text())
    body = (f"    unsigned i;\n    for (i = 0; i < {len(labels)}u; i++) put(aebnn_{ident}_labels[i]);\n"
            f"    (void)AEBNN_DEFAULT_MODEL;")
    assert _run_c(body, ["anyedge_bnn.h", "model.h"], [BNN_DIR, tmp_path / "x"], tmp_path) == _put(*labels)
    # the name only reaches the comment (on its line) and the identifier: otherwise a plain name's header
    (tmp_path / "p").mkdir()
    plain, plain_ident = _har_header(tmp_path / "p", racketsports, "plain", labels)
    assert _code(header, ident) == _code(plain, plain_ident)
    assert len(header.read_text().splitlines()) == len(plain.read_text().splitlines())

"""Galleries shared by processes: creating one file at the same instant from several processes
always succeeds, and a long-lived Gallery never misses a commit that lands right after its own."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np

from anyedge.recognition.gallery import Gallery
from anyedge.tasks.face_embedder import EmbedderIdentity

ID = EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112")


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _create_at_once(folder: str, rounds: int, barrier: Any) -> list[str]:
    """Open a new gallery in each round at the same instant as the other processes."""
    errors = []
    for i in range(rounds):
        barrier.wait(timeout=60)
        try:
            Gallery(Path(folder) / f"g{i}.db", ID).close()
        except Exception as e:  # noqa: BLE001 - every failure is collected and reported
            errors.append(f"round {i}: {type(e).__name__}: {e}")
    return errors


def test_processes_creating_one_gallery_at_once_all_succeed(tmp_path: Path) -> None:
    procs, rounds = 6, 40
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        barrier = manager.Barrier(procs)
        results = pool.starmap_async(_create_at_once, [(str(tmp_path), rounds, barrier)] * procs).get(timeout=300)
    errors = [e for r in results for e in r]
    assert errors == [], f"{len(errors)} of {procs * rounds} opens failed: {errors[:5]}"
    for i in range(rounds):
        with Gallery(tmp_path / f"g{i}.db", create=False) as g:
            assert g.identity == {"name": ID.name, "sha256": ID.sha256, "dim": "16", "geometry": ID.geometry}


def test_a_commit_right_after_our_own_is_seen(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with Gallery(db, ID) as other, Gallery(db, ID) as g:
        state = {"committed": False, "done": False}

        def after_our_commit(sql: str) -> None:  # another connection commits just after ours
            if state["done"]:
                return
            if sql == "COMMIT":
                state["committed"] = True
            elif state["committed"]:
                state["done"] = True
                other.add("bob", _vecs(1, 2))

        g._conn.set_trace_callback(after_our_commit)
        g.add("alice", _vecs(2, 1))
        assert g.people() == [("alice", 2), ("bob", 1)]
        assert state["done"]
        g._conn.set_trace_callback(None)
        assert g.search(_vecs(1, 2)[0], 1)[0][0].name == "bob"

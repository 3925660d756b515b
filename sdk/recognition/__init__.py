"""Face recognition: align, embed, verify and identify faces.

- :mod:`.pipeline`: :class:`~anyedge.recognition.pipeline.FacePipeline`, detect -> align -> embed
  (-> name from a gallery) in one call, with the enrolment quality gate.
- :mod:`.gallery`: :class:`~anyedge.recognition.gallery.Gallery`, people and their embeddings
  in one SQLite file.
- :mod:`.verification`: ROC, AUC, EER, TAR at FAR and thresholds from labelled pair scores.
- :mod:`.cli`: ``anyedge verify``, ``anyedge calibrate-threshold`` and ``anyedge gallery ...``.

The embedder itself is a task (:mod:`anyedge.tasks.face_embedder`). Nothing is imported here:
``from anyedge import FacePipeline, Gallery`` loads each module when first used.
"""

from __future__ import annotations

__all__: list[str] = []

"""Face recognition: align, embed, verify and identify faces.

- :mod:`.pipeline`: :class:`~anyedge.recognition.pipeline.FacePipeline`, detect -> align -> embed
  (-> name from a gallery) in one call, with the enrolment quality gate.
- :mod:`.gallery`: :class:`~anyedge.recognition.gallery.Gallery`, people and their embeddings
  in one SQLite file.
- :mod:`.verification`: ROC, AUC, EER, TAR at FAR and thresholds from labelled pair scores.
- :mod:`.cli`: ``anyedge verify``, ``anyedge calibrate-threshold`` and ``anyedge gallery ...``.

The embedder itself is a task (:mod:`anyedge.tasks.face_embedder`). Nothing is imported here:
``from anyedge import FacePipeline, Gallery`` loads each module when first used. The default
models live here, so the command line can name them without loading a model module.
"""

from __future__ import annotations

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_EMBEDDER"]

#: Recognition's face detector when neither the caller nor the gallery names one: YuNet-s
#: (Apache-2.0, 5 keypoints); see :mod:`anyedge.recognition.pipeline` for why.
DEFAULT_DETECTOR = "yunet"
#: Recognition's embedder when neither the caller nor the gallery names one.
DEFAULT_EMBEDDER = "mobilefacenet"

"""Face detection as a product feature: the ``detect`` and ``demo`` commands (:mod:`.cli`).

The detector task is :class:`anyedge.tasks.face_detector.FaceDetector` (``from anyedge import
FaceDetector``); live streams are :mod:`anyedge.live`.
"""

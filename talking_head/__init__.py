"""talking-head: few-shot neural talking heads (Zakharov et al., ICCV 2019).

The package is an importable library: nothing heavy runs at import. Import the
submodules you need, e.g. ``from talking_head.face.landmarks import detect_landmarks``.
"""

__version__ = "0.1.0"

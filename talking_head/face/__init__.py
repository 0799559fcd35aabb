"""Faces in pixels: 68-point landmarks, their tracks, rasterization, the crop, and driving motion."""

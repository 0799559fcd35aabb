"""Animating a person: embedding photos, fine-tuning, rendering a driving motion, landmark overlays."""

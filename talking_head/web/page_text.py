"""The page's own words: its introduction."""

from __future__ import annotations

DESCRIPTION = """\
# Few-shot talking heads
Upload one or more **photos of one person**, pick a **driving motion** (an example, your own clip, or a webcam
recording) and get an MP4 of the photo moving like the driver, with a landmark overlay that shows what drove it.
An implementation of [Zakharov et al., *Few-Shot Adversarial Learning of Realistic Neural Talking Head Models*
(ICCV 2019)](https://arxiv.org/abs/1905.08233). Fine-tuning steps adapt the model to the person (0 = the paper's
feed-forward use, fastest).

**Responsible use:** only animate people who agreed to it, and never present the result as a real recording.
Every video carries a "synthetic" tag in its metadata and, by default, a visible mark.
"""


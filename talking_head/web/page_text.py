"""The page's own words: its introduction and the licence footer.

:data:`LICENCES` is the one statement of what may be done with each part of
the project; the page footer shows it, and the README, the model card's
front matter and text, and ``LICENSE`` / ``weights/LICENSE`` say the same
(``tests/test_licences.py`` checks that they agree).
"""

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

# The steps slider's help: what the steps cost and when they pay (measured, weights/README.md).
STEPS_INFO = (
    "0 = the paper's feed-forward use, the fastest and the default on a CPU. Each step fits the model a little "
    "more to this person: 40 (the default on a GPU) add about 15-20 s on a 2-core CPU and, on our held-out "
    "clips, slightly sharper lips on some faces (+0.008 mouth SSIM on average), nothing on others."
)

# What may be done with each part: (part, terms, why).
LICENCES = (
    ("Code", "Apache-2.0", "see LICENSE"),
    (
        "Model weights",
        "research and non-commercial use only",
        "trained on talking-face clips collected for research, with landmarks from dlib's 68-point model",
    ),
    (
        "dlib's 68-point landmark model",
        "non-commercial use only",
        "trained on the iBUG 300-W data, whose terms exclude commercial use",
    ),
    (
        "Example motions",
        "research and non-commercial use only",
        "landmark numbers tracked from the same research clips, no video pixels",
    ),
    ("Example photo", "public domain", "NASA, via scikit-image"),
)


def licence_footer() -> str:
    """The page footer: one line per part, in Markdown."""
    lines = [f"**{part}:** {terms} ({why})." for part, terms, why in LICENCES]
    return "<small>\n\n" + "  \n".join(lines) + "\n\n</small>"

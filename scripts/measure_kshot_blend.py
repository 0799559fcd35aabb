#!/usr/bin/env python3
"""K-shot blending of warps on a validation folder: similarity softmax at several τ, uniform mean, nearest shot.

Usage: python scripts/measure_kshot_blend.py VAL OUT.json   (VAL: <identity>/<clip>.mp4 validation clips, docs/DATA.md)

For each clip, the evaluate protocol's frames (8 shots from the first quarter, 32 hold-out
frames): SSIM, mouth SSIM and sharpness of the warp alone, 1 shot vs 8 shots blended.
The choice of warp.DEFAULT_TEMPERATURE and its numbers are in docs/WARP.md.
"""

import json
import sys
import time

import numpy as np
import torch

from talking_head.evaluation import evaluate as ev
from talking_head.evaluation import metrics
from talking_head.face.landmarks import get_detector
from talking_head.nets import warp as W

torch.set_num_threads(1)

cfg = ev.EvalConfig(shots=(1, 8), steps=(0,), cross=False)
det = get_detector("dlib")
clips = ev.find_clips(sys.argv[1])
taus = {
    "tau0.002": 0.002,
    "tau0.005": 0.005,
    "tau0.02": 0.02,
    "uniform": 1e6,
    "nearest": 1e-6,
}  # softmax temperatures
rows = {k: [] for k in ["T1"] + list(taus)}
t0 = time.time()
for path in clips:
    clip = ev.frame_clip(path, path.name, cfg, 256, det)
    hold = clip.holdout
    real = np.stack([clip.crops[i] for i in hold])
    tp = torch.from_numpy(np.stack([clip.points[i] for i in hold]))

    def score(
        pred: np.ndarray, real: np.ndarray = real, hold: list = hold, clip: ev.FramedClip = clip
    ) -> np.ndarray:
        out = []
        for p, r, i in zip(pred, real, hold):
            m = metrics.image_metrics(p, r)
            mm = metrics.mouth_metrics(p, r, clip.points[i])
            out.append((m["ssim"], mm["mouth_ssim"], metrics.sharpness(p)))
        return np.mean(out, 0)

    for T, names in ((1, ["T1"]), (8, list(taus))):
        ids = clip.shots[T]
        shots = (
            torch.from_numpy(np.stack([clip.crops[i] for i in ids])).permute(0, 3, 1, 2).float() / 127.5 - 1
        )
        sp = torch.from_numpy(np.stack([clip.points[i] for i in ids]))
        for name in names:
            tau = taus.get(name, W.DEFAULT_TEMPERATURE)
            with torch.no_grad():
                w = torch.cat(
                    [W.warp_shots(shots, sp, tp[s : s + 8], temperature=tau) for s in range(0, len(tp), 8)]
                )
            pred = ((w.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            rows[name].append(score(pred))
    print(path.name, round(time.time() - t0), flush=True)
summary = {
    k: dict(zip(["ssim", "mouth_ssim", "sharpness"], np.mean(v, 0).round(4).tolist()))
    for k, v in rows.items()
}
print(json.dumps(summary, indent=1))
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)

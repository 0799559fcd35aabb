"""Prepared-clip storage, the episode dataset (flip augmentation) and the episode sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _synthetic import draw_face, make_prepared_dataset, template_landmarks

from talking_head.errors import TalkingHeadError
from talking_head.face.motion import FLIP_PERMUTATION, flip_landmarks
from talking_head.face.raster import rasterize_landmarks
from talking_head.training.data import (
    EpisodeDataset,
    EpisodeSampler,
    image_to_tensor,
    kept_entries,
    load_prepared_clip,
    save_prepared_clip,
    tensor_to_image,
)


def test_prepared_clip_round_trip(tmp_path):
    points = np.stack([template_landmarks(64, m) for m in (0.0, 1.0)])
    crops = [draw_face(p, 64, (200, 160, 140), (20, 30, 40)) for p in points]
    nbytes = save_prepared_clip(tmp_path / "a/b.npz", crops, points, [[1, 2, 30], [3, 4, 31]], [0, 7])
    clip = load_prepared_clip(tmp_path / "a/b.npz")
    assert nbytes == (tmp_path / "a/b.npz").stat().st_size
    assert not list(tmp_path.rglob("*.tmp*"))
    assert len(clip) == 2 and clip.image_size == 64
    np.testing.assert_allclose(clip.landmarks, points, atol=0.05)  # float16 storage
    np.testing.assert_array_equal(clip.frame_indices, [0, 7])
    np.testing.assert_allclose(clip.boxes[1], [3, 4, 31])
    decoded = clip.image(1).astype(int)
    assert decoded.shape == (64, 64, 3)
    assert np.abs(decoded - crops[1]).mean() < 4  # JPEG q90
    # Resizing keeps image and points in one geometry: the mouth stays red at the resized points.
    small, small_points = clip.image(1, 32), clip.points(1, 32)
    assert small.shape == (32, 32, 3)
    np.testing.assert_allclose(small_points, clip.landmarks[1] * 0.5, atol=1e-4)
    mouth = np.round(small_points[[51, 57]].mean(axis=0)).astype(int)
    r, g, b = small[mouth[1], mouth[0]].astype(int)
    assert r > g + 40 and r > b + 40


def test_load_prepared_clip_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TalkingHeadError, match="prepare"):
        load_prepared_clip(bad)


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(TalkingHeadError, match="prepare"):
        EpisodeDataset(tmp_path)


def test_flip_permutation_is_a_mirror_of_the_symmetric_template():
    points = template_landmarks(64)
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))
    # The template is left/right symmetric: its mirror image, re-indexed, is itself.
    np.testing.assert_allclose(flip_landmarks(points, 64), points, atol=1e-4)
    # An asymmetric face (mouth shifted right) mirrors to a mouth shifted left.
    shifted = points.copy()
    shifted[48:68, 0] += 5
    assert flip_landmarks(shifted, 64)[48:68, 0].mean() < points[48:68, 0].mean() - 4


def test_episode_shapes_and_determinism(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=3, num_frames=12, size=64)
    dataset = EpisodeDataset(tmp_path, k_shots=4, image_size=64)
    assert len(dataset) == 3
    assert dataset.video_names() == ["person00/talk", "person01/talk", "person02/talk"]
    episode = dataset[(2, 123)]
    assert episode["shot_images"].shape == (4, 3, 64, 64)
    assert episode["shot_landmarks"].shape == (4, 3, 64, 64)
    assert episode["target_image"].shape == (3, 64, 64)
    assert episode["target_landmarks"].shape == (3, 64, 64)
    assert int(episode["video_index"]) == 2
    assert episode["target_image"].min() >= -1 and episode["target_image"].max() <= 1
    again = dataset[(2, 123)]
    for key in episode:
        assert torch.equal(episode[key], again[key])
    other = dataset[(2, 124)]
    assert not torch.equal(episode["target_image"], other["target_image"]) or not torch.equal(
        episode["shot_images"], other["shot_images"]
    )


def test_episode_frames_are_distinct_when_possible(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=1, num_frames=5, size=32)
    dataset = EpisodeDataset(tmp_path, k_shots=4, image_size=32, flip=False)
    frames = dataset._choose_frames(5, np.random.default_rng(0))
    assert sorted(frames.tolist()) == [0, 1, 2, 3, 4]
    few = dataset._choose_frames(3, np.random.default_rng(0))
    assert len(few) == 5 and few[0] not in few[1:]  # target never among the shots


def test_flip_is_consistent_for_image_and_landmarks(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=1, num_frames=10, size=64)
    plain = EpisodeDataset(tmp_path, k_shots=2, image_size=64, flip=False)
    flipping = EpisodeDataset(tmp_path, k_shots=2, image_size=64, flip=True)
    seeds = [s for s in range(40) if bool(flipping[(0, s)]["flipped"])]
    assert 5 < len(seeds) < 35  # about half of the episodes are mirrored
    seed = seeds[0]
    a, b = plain[(0, seed)], flipping[(0, seed)]
    # Same frames; the mirrored episode is the plain one flipped, shots included.
    assert torch.equal(b["target_image"], a["target_image"].flip(-1))
    assert torch.equal(b["shot_images"], a["shot_images"].flip(-1))
    # Landmarks follow the image: rasterizing the flipped points of the stored clip gives y.
    clip = plain.clip(0)
    frame = next(
        f for f in range(len(clip)) if torch.equal(image_to_tensor(clip.image(f)).flip(-1), b["target_image"])
    )
    expected = rasterize_landmarks(flip_landmarks(clip.points(frame), 64), 64)
    np.testing.assert_array_equal(tensor_to_image(b["target_landmarks"]), expected)


def test_dataset_resizes_to_the_preset_size(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=1, num_frames=10, size=64)
    episode = EpisodeDataset(tmp_path, k_shots=2, image_size=32)[0]
    assert episode["target_image"].shape == (3, 32, 32)
    assert episode["shot_landmarks"].shape == (2, 3, 32, 32)


def test_kept_entries_skip_skipped_clips_and_latest_line_wins(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=2, num_frames=4, size=32)
    manifest = tmp_path / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    skipped = {**lines[1], "file": None, "skipped": "no face: none"}
    bad = {
        **lines[0],
        "source": "x/y.mp4",
        "identity": "x",
        "clip": "y",
        "file": None,
        "skipped": "empty video: 0",
    }
    with manifest.open("a") as f:
        f.write(json.dumps(skipped) + "\n" + json.dumps(bad) + "\n" + '{"cut short')
    assert [e["identity"] for e in kept_entries(tmp_path)] == ["person00"]


def test_sampler_shards_ranks_and_resumes():
    one = EpisodeSampler(5, seed=3)
    stream = [next(it) for it in [iter(one)] for _ in range(12)]
    videos = [v for v, _ in stream]
    assert sorted(videos[:5]) == [0, 1, 2, 3, 4] and sorted(videos[5:10]) == [0, 1, 2, 3, 4]
    assert len({s for _, s in stream}) == 12  # every episode has its own seed
    # Resuming at position 7 yields exactly what follows position 7.
    it = iter(EpisodeSampler(5, seed=3, start=7))
    assert [next(it) for _ in range(5)] == stream[7:12]
    # Two ranks: disjoint videos within an epoch (5 videos padded to 6), different seeds.
    r0, r1 = (
        iter(EpisodeSampler(5, 3, rank=0, world_size=2)),
        iter(EpisodeSampler(5, 3, rank=1, world_size=2)),
    )
    a, b = [next(r0) for _ in range(3)], [next(r1) for _ in range(3)]
    assert {v for v, _ in a} | {v for v, _ in b} == {0, 1, 2, 3, 4}
    assert not {s for _, s in a} & {s for _, s in b}


def test_dataloader_batches_episodes(tmp_path):
    make_prepared_dataset(tmp_path, num_videos=2, num_frames=6, size=32)
    dataset = EpisodeDataset(tmp_path, k_shots=3, image_size=32)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=EpisodeSampler(len(dataset), seed=0))
    batch = next(iter(loader))
    assert batch["shot_images"].shape == (2, 3, 3, 32, 32)
    assert sorted(batch["video_index"].tolist()) == [0, 1]

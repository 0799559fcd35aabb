"""talking_head.web: limits, weights at start, input checks, previews, the render job, ZeroGPU durations."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _bad_inputs import png_header_only, write_track_npz
from _landmark_helpers import moving_face_clip
from _synthetic import write_tone
from _tiny_weights import make_tiny_weights
from PIL import Image

from talking_head.animation.pipeline import load_model
from talking_head.errors import (
    ImageReadError,
    NoFaceError,
    TalkingHeadError,
    UnsupportedFileError,
    WeightsError,
)
from talking_head.face.landmarks import get_detector
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.images import load_image
from talking_head.media.video import ffmpeg_exe, probe_video
from talking_head.media.video_reader import read_video_frames
from talking_head.media.video_writer import VideoWriter
from talking_head.web.inputs import RenderRequest, check_upload, load_photo
from talking_head.web.job import PreparedJob, RenderOutcome, prepare_job, run_job
from talking_head.web.limits import GPU_BASE_S, GPU_MAX_S, AppLimits, gpu_duration
from talking_head.web.previews import MOTION_PREVIEW_SIZE, example_motions, motion_preview, preview_photos
from talking_head.web.state import load_app_weights

EXAMPLE_MOTIONS = Path(__file__).resolve().parent.parent / "examples" / "motions"
MOTION = EXAMPLE_MOTIONS / "calm-talking.npz"
LIMITS = AppLimits(max_driving_seconds=2.0)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("service") / "weights")


@pytest.fixture(scope="module")
def model(weights_dir: Path):
    return load_model(weights_dir, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return get_detector("dlib")


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a photo")
    return path


def _job(model, detector, tmp_path: Path, **fields) -> tuple[PreparedJob, RenderOutcome]:
    fields.setdefault("photos", (str(Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"),))
    fields.setdefault("driving", str(MOTION))
    fields.setdefault("max_seconds", 0.4)
    request = RenderRequest(**fields)
    job = prepare_job(request, LIMITS, detector, model.config.image_size)
    return job, run_job(model, job, detector, output_dir=tmp_path)


def _ffmpeg_header(path: Path) -> str:
    # ffmpeg exits non-zero without an output file; its stderr still lists the tags.
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], check=False, capture_output=True, text=True
    ).stderr


# ----- limits and weights ------------------------------------------------------------------


def test_limits_come_from_the_environment() -> None:
    limits = AppLimits.from_env(
        {"TALKING_HEAD_MAX_PHOTOS": "3", "TALKING_HEAD_MAX_SECONDS": "4.5", "TALKING_HEAD_DEFAULT_STEPS": "0"}
    )
    assert limits.max_photos == 3 and limits.max_driving_seconds == 4.5 and limits.default_steps == 0
    assert limits.max_upload_bytes == int(AppLimits().max_upload_mb * 1024 * 1024)
    assert AppLimits.from_env({}) == AppLimits()
    assert AppLimits().initial_steps("cpu") == 0 and AppLimits().initial_steps("cuda") == 40
    assert AppLimits(default_steps=7).initial_steps("cuda") == 7
    assert AppLimits(max_steps=5).initial_steps("cuda") == 5
    with pytest.raises(TalkingHeadError, match="TALKING_HEAD_MAX_PHOTOS='many'"):
        AppLimits.from_env({"TALKING_HEAD_MAX_PHOTOS": "many"})
    with pytest.raises(TalkingHeadError, match="TALKING_HEAD_MAX_SECONDS='0'.*too small"):
        AppLimits.from_env({"TALKING_HEAD_MAX_SECONDS": "0"})


def test_missing_weights_give_a_plain_message(tmp_path: Path) -> None:
    weights = load_app_weights(environ={"TALKING_HEAD_WEIGHTS": str(tmp_path / "nothing")})
    assert not weights.ok and weights.model is None
    assert str(tmp_path / "nothing") in weights.error
    assert "TALKING_HEAD_WEIGHTS" in weights.error and "python -m talking_head train" in weights.error
    with pytest.raises(WeightsError, match="TALKING_HEAD_WEIGHTS"):
        weights.require()
    assert load_app_weights(environ={}).source == "weights"  # the default folder


def test_weights_load_from_the_environment(weights_dir: Path) -> None:
    weights = load_app_weights(environ={"TALKING_HEAD_WEIGHTS": str(weights_dir)}, device="cpu")
    assert weights.ok and weights.require().config.image_size == 64
    assert "64 px" in weights.describe() and "cpu" in weights.describe()


# ----- input checks and previews -------------------------------------------------------------


def test_a_text_file_as_photo_names_the_photo(text_file: Path) -> None:
    with pytest.raises(UnsupportedFileError, match=r"photo 2 \('notes.txt'\) is not an image.*JPEG, PNG"):
        load_photo(text_file, "photo 2", LIMITS)


def test_a_truncated_photo_is_reported_as_damaged(tmp_path: Path, astronaut_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(astronaut_path.read_bytes()[:2000])
    with pytest.raises(ImageReadError, match=r"photo 1 \('broken.png'\) cannot be read"):
        load_photo(broken, "photo 1", LIMITS)


def test_upload_size_and_image_side_limits(astronaut_path: Path) -> None:
    with pytest.raises(UnsupportedFileError, match=r"MB; the limit is 0.1 MB"):
        load_photo(astronaut_path, "photo 1", AppLimits(max_upload_mb=0.1))
    small = load_photo(astronaut_path, "photo 1", AppLimits(max_image_side=200))
    assert small.shape == (200, 200, 3)  # the 512 × 512 astronaut, downscaled
    with pytest.raises(TalkingHeadError, match="missing"):
        check_upload(None, "the driving clip", LIMITS)


def test_preview_draws_faces_and_warns_per_photo(
    tmp_path: Path, astronaut_path: Path, text_file: Path, detector
) -> None:
    blank = tmp_path / "blank.png"
    blank.write_bytes(astronaut_path.read_bytes())
    import cv2

    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    items, warnings = preview_photos([astronaut_path, text_file, blank], detector, LIMITS, 64)
    assert len(items) == 2  # the text file has no preview
    image, caption = items[0]
    assert caption.startswith("photo 1 (astronaut.png): face") and image.shape[2] == 3
    assert not np.array_equal(image, load_image(astronaut_path))  # box and landmarks drawn
    assert items[1][1].startswith("⚠ photo 3 (blank.png)")
    assert len(warnings) == 2
    assert warnings[0].startswith("photo 2 ('notes.txt') is not an image")
    assert warnings[1].startswith("photo 3 (blank.png)") and "no face" in warnings[1]


# ----- the job ----------------------------------------------------------------------------------


def test_a_motion_is_trimmed_to_the_limit_with_a_notice(model, detector, astronaut_path: Path) -> None:
    request = RenderRequest(photos=(str(astronaut_path),), driving=str(MOTION), max_seconds=30)
    job = prepare_job(request, LIMITS, detector, model.config.image_size)
    assert job.num_frames == 50  # 2 s (the limit) of the 25 fps motion
    # 30 s is above the limit: trimmed to it, and the notice says why (no refusal)
    assert job.notices == ["the driving motion is 5.0 s long; the first 2 s were used (this server's limit)"]
    assert job.motion.video is None and job.backend == "dlib"


def test_inputs_are_checked_before_any_work(model, detector, astronaut_path: Path, text_file: Path) -> None:
    size = model.config.image_size
    photo = str(astronaut_path)

    def prepare(**fields):
        fields.setdefault("photos", (photo,))
        fields.setdefault("driving", str(MOTION))
        return prepare_job(RenderRequest(**fields), LIMITS, detector, size)

    with pytest.raises(TalkingHeadError, match="9 photos were given; the limit is 8"):
        prepare(photos=(photo,) * 9)
    with pytest.raises(TalkingHeadError, match="no photo was given"):
        prepare(photos=())
    with pytest.raises(TalkingHeadError, match=r"motion \(mode='sideways'\) must be 'relative' or 'absolute'"):
        prepare(mode="sideways")
    with pytest.raises(TalkingHeadError, match=r"fine-tuning steps \(steps=101\) must be a whole number from 0 to 100"):
        prepare(steps=101)
    with pytest.raises(UnsupportedFileError, match=r"photo 2 \('notes.txt'\)"):
        prepare(photos=(photo, str(text_file)))
    with pytest.raises(UnsupportedFileError, match="is a photo; use a video clip"):
        prepare(driving=photo)
    with pytest.raises(UnsupportedFileError, match="not a landmark track"):
        broken = text_file.with_suffix(".npz")
        shutil.copy(text_file, broken)
        prepare(driving=str(broken))


def test_a_clip_without_a_face_in_most_frames_is_refused(
    model, detector, astronaut_path: Path, tmp_path: Path
) -> None:
    frames, _ = moving_face_clip("FF......", height=240, width=240)
    clip = tmp_path / "mostly-empty.mp4"
    with VideoWriter(clip, 10) as writer:
        for frame in frames:
            writer.write(frame)
    request = RenderRequest(photos=(str(astronaut_path),), driving=str(clip))
    with pytest.raises(
        NoFaceError, match=r"no face was found in most frames of the driving clip \(found in 25% of 8"
    ):
        prepare_job(request, LIMITS, detector, model.config.image_size)


def test_run_job_writes_result_and_overlay_marked_synthetic(model, detector, tmp_path: Path) -> None:
    _, outcome = _job(model, detector, tmp_path, output_size=96)
    assert outcome.num_frames == 10 and outcome.fps == 25  # 0.4 s of the 25 fps motion
    result, overlay = probe_video(outcome.video), probe_video(outcome.overlay)
    assert result.num_frames == 10 and result.size == (96, 96)
    assert overlay.num_frames == 10 and overlay.size == (3 * 64, 64)  # driving | landmarks | result
    for path in (outcome.video, outcome.overlay):
        assert re.search(r"comment\s*: synthetic video", _ffmpeg_header(path))
    assert set(outcome.timings) == {"landmarks", "embedding", "fine-tuning", "rendering"}
    status = outcome.status
    assert "10 frames rendered (0.4 s at 25 fps)" in status and "landmarks: dlib" in status
    assert "device: cpu" in status and "photos used: 1/1" in status and "(feed-forward)" in status
    assert "the first 0.4 s were used" in status


def test_the_visible_mark_can_be_turned_off(model, detector, tmp_path: Path) -> None:
    _, marked = _job(model, detector, tmp_path / "a", max_seconds=0.04, output_size=128)
    _, plain = _job(model, detector, tmp_path / "b", max_seconds=0.04, output_size=128, watermark=False)
    marked_frame = read_video_frames(marked.video)[0][0].astype(int)
    plain_frame = read_video_frames(plain.video)[0][0].astype(int)
    corner = np.abs(marked_frame[-30:, :80] - plain_frame[-30:, :80]).mean()
    rest = np.abs(marked_frame[:80] - plain_frame[:80]).mean()
    assert corner > 10 * max(rest, 0.5)  # the mark sits in the lower left corner only


def test_a_clip_drives_with_its_audio_paste_back_and_fine_tuning(
    model, detector, astronaut_path: Path, tmp_path: Path
) -> None:
    face = np.ascontiguousarray(load_image(astronaut_path)[20:276, 100:356])
    clip = tmp_path / "driver.mp4"
    with VideoWriter(clip, 10, audio_from=write_tone(tmp_path / "tone.wav", seconds=1.0)) as writer:
        for shift in range(6):
            writer.write(np.roll(face, shift, axis=0))
    calls: list[tuple[float, str]] = []
    request = RenderRequest(
        photos=(str(astronaut_path),),
        driving=str(clip),
        steps=2,
        paste_back=True,
        output_size=256,
        mode="absolute",
    )
    job = prepare_job(
        request, LIMITS, detector, model.config.image_size, progress=lambda f, d: calls.append((f, d))
    )
    outcome = run_job(
        model, job, detector, progress=lambda f, d: calls.append((f, d)), output_dir=tmp_path
    )
    info = probe_video(outcome.video)
    assert info.num_frames == 6 and info.has_audio and outcome.has_audio
    assert info.size == (256, 256)  # the 512 × 512 photo with the face pasted back, scaled to 256
    assert "fine-tuning: 2 steps" in outcome.status and "with the clip audio" in outcome.status
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    descriptions = " ".join(d for _, d in calls)
    assert "Driving landmarks" in descriptions and "Fine-tuning: step 2/2" in descriptions
    assert "Rendering: frame 6/6" in descriptions


def test_gpu_duration_grows_with_the_work_and_is_capped() -> None:
    base = gpu_duration(0, 0)
    assert base == GPU_BASE_S
    assert gpu_duration(20, 125) > gpu_duration(0, 125) > base
    assert gpu_duration(10_000, 10_000) == GPU_MAX_S
    assert isinstance(gpu_duration(3, 7), int)


# ----- example motions -------------------------------------------------------------------------


def test_example_motions_are_small_tracks_with_fps_and_previews() -> None:
    motions = example_motions(EXAMPLE_MOTIONS)
    assert len(motions) >= 3
    for track_path, preview in motions:
        assert (
            track_path.stat().st_size < 1_000_000
            and preview is not None
            and preview.stat().st_size < 1_000_000
        )
        with np.load(track_path, allow_pickle=False) as data:  # numbers only: no images inside
            assert all(data[key].ndim <= 3 and data[key].dtype != np.uint8 for key in data.files)
        track = LandmarkTrack.load(track_path)
        assert track.fps == 25 and len(track) == 125 and track.face_fraction > 0.9
        assert probe_video(preview).num_frames == 125


def test_motion_preview_uses_the_shipped_one_or_renders_a_sketch(tmp_path: Path, text_file: Path) -> None:
    assert motion_preview(MOTION, LIMITS) == MOTION.with_suffix(".mp4")
    copy = tmp_path / "mine.npz"
    shutil.copy(MOTION, copy)
    preview = motion_preview(copy, LIMITS, output_dir=tmp_path)
    info = probe_video(preview)
    # Trimmed to the 2 s limit.
    assert info.num_frames == 50 and info.size == (MOTION_PREVIEW_SIZE,) * 2
    with pytest.raises(UnsupportedFileError, match="not a landmark track"):
        motion_preview(text_file, LIMITS)


# ----- hardening: limits on the work, true reasons, no internals in messages -----------------------


def _refusal(model, detector, tmp_path: Path, limits: AppLimits = LIMITS, **fields) -> str:
    """The message of the user error prepare_job raises for a request (it must raise one)."""
    fields.setdefault("photos", (str(EXAMPLE_PHOTO),))
    fields.setdefault("driving", str(MOTION))
    with pytest.raises(TalkingHeadError) as info:
        prepare_job(RenderRequest(**fields), limits, detector, model.config.image_size)
    message = str(info.value)
    for internal in (str(tmp_path), "/tmp/", "allow_pickle", "Something went wrong", "Traceback"):
        assert internal not in message
    return message


EXAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"


def test_limits_count_frames_and_pixels() -> None:
    limits = AppLimits.from_env({"TALKING_HEAD_MAX_FPS": "24", "TALKING_HEAD_MAX_IMAGE_MEGAPIXELS": "12"})
    assert limits.max_fps == 24 and limits.max_frames == 240 and limits.max_image_pixels == 12_000_000
    assert AppLimits().max_frames == 300  # 10 s at 30 fps
    assert AppLimits().photo_decode_bytes == 320_000_000


def test_a_fast_clip_renders_at_most_the_frame_cap(model, detector, tmp_path: Path) -> None:
    face = np.ascontiguousarray(load_image(EXAMPLE_PHOTO)[20:276, 100:356])
    clip = tmp_path / "fast.mp4"
    with VideoWriter(clip, 240) as writer:  # 1 s at 240 fps
        for shift in range(240):
            writer.write(np.roll(face, shift // 40, axis=0))
    limits = AppLimits(max_driving_seconds=0.5, max_fps=10.0)
    job = prepare_job(
        RenderRequest(photos=(str(EXAMPLE_PHOTO),), driving=str(clip)), limits, detector, model.config.image_size
    )
    assert job.num_frames == limits.max_frames == 5 and job.motion.fps == 10
    assert any("240 fps; it was resampled to 10 fps" in notice for notice in job.notices)
    outcome = run_job(model, job, detector, output_dir=tmp_path)
    assert outcome.num_frames == 5
    assert probe_video(outcome.video).num_frames == 5 and probe_video(outcome.overlay).num_frames == 5
    # The overlay shows the frames the motion was tracked on: 0, 24, 48, ... of the 240 fps clip.
    first_panel = read_video_frames(outcome.overlay)[0][1][:, :64]
    assert first_panel.std() > 5  # a driving photo, not a blank panel


def test_a_fast_track_renders_at_most_the_frame_cap(model, detector, tmp_path: Path) -> None:
    calm = LandmarkTrack.load(MOTION)
    fast = tmp_path / "fast.npz"
    LandmarkTrack(calm.points, calm.boxes, calm.found, 100.0, calm.backend, calm.frame_size).save(fast)
    limits = AppLimits(max_driving_seconds=1.0, max_fps=10.0)
    job = prepare_job(
        RenderRequest(photos=(str(EXAMPLE_PHOTO),), driving=str(fast)), limits, detector, model.config.image_size
    )
    assert job.num_frames == 10 and job.motion.fps == 10  # 1 s, not 100 frames
    assert run_job(model, job, detector, output_dir=tmp_path).num_frames == 10
    preview = motion_preview(fast, limits, output_dir=tmp_path)
    assert probe_video(preview).num_frames == 10


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"fps": np.float64(0.0)}, "frame rate 'fps' is 0"),
        ({"points": np.full((10, 68, 2), np.nan, dtype=np.float32)}, "NaN or infinite values in 10 of 10 frames"),
        ({"points": None}, "has no 'points' array"),
        ({"points": np.zeros((10, 5, 2), dtype=np.float32)}, "'points' has shape (10, 5, 2)"),
    ],
)
def test_a_bad_track_is_refused_before_any_work(
    model, detector, tmp_path: Path, overrides: dict, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("talking_head.web.job.load_photo", lambda *a: pytest.fail("photos are loaded after the track"))
    path = write_track_npz(tmp_path / "my-motion.npz", **overrides)
    message = _refusal(model, detector, tmp_path, driving=str(path))
    assert message.startswith("the driving motion ('my-motion.npz') is not a landmark track") and reason in message


def test_a_photo_track_cannot_drive(model, detector, tmp_path: Path) -> None:
    path = write_track_npz(tmp_path / "still.npz", frames=1, fps=np.float64(0.0))
    assert "has no frame rate" in _refusal(model, detector, tmp_path, driving=str(path))


def test_photo_errors_name_the_true_cause(model, detector, tmp_path: Path) -> None:
    text = tmp_path / "photo.jpg"
    text.write_text("I am text, not a photo")
    message = _refusal(model, detector, tmp_path, photos=(str(text),))
    assert message.startswith("photo 1 ('photo.jpg') is not an image") and "damaged" not in message
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(20000, 20000))
    message = _refusal(model, detector, tmp_path, photos=(str(EXAMPLE_PHOTO), str(huge)))
    assert message.startswith("photo 2 ('huge.png') is") and "the limit is 40 megapixels" in message
    limits = AppLimits(max_image_megapixels=0.1)
    message = _refusal(model, detector, tmp_path, limits=limits)  # the 512×512 astronaut is 0.26 MP
    assert "512×512 pixels" in message and "the limit is 0.1 megapixels" in message


def test_a_cut_clip_is_called_incomplete(model, detector, tmp_path: Path) -> None:
    face = np.ascontiguousarray(load_image(EXAMPLE_PHOTO)[20:276, 100:356])
    whole = tmp_path / "whole.mp4"
    with VideoWriter(whole, 10) as writer:
        for shift in range(10):
            writer.write(np.roll(face, shift, axis=0))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:2000])
    message = _refusal(model, detector, tmp_path, driving=str(cut))
    assert "'cut.mp4' is incomplete" in message and "no frames" not in message


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"steps": 2.5}, "whole number"),
        ({"steps": float("nan")}, "whole number"),
        ({"smoothing": float("nan")}, "smoothing of the driving landmarks (smoothing=nan) must be"),
        ({"smoothing": 50}, "smoothing of the driving landmarks (smoothing=50) must be a number of frames from 0 to 5"),
        ({"steps": 500}, "fine-tuning steps (steps=500) must be a whole number from 0 to 100 on this server"),
        ({"steps": "many"}, "fine-tuning steps (steps='many') must be a whole number"),
        ({"max_seconds": float("inf")}, "seconds of the driving motion"),
        ({"max_seconds": -1.0}, "seconds of the driving motion"),
        ({"output_size": 100000}, "output size (output_size=100000) must be 0 (the model's size) or a whole number"),
    ],
)
def test_settings_are_checked_not_rounded(model, detector, tmp_path: Path, fields: dict, reason: str) -> None:
    assert reason in _refusal(model, detector, tmp_path, **fields)


def test_two_people_the_status_says_which_face_was_used(model, detector, tmp_path: Path) -> None:
    photo = load_image(EXAMPLE_PHOTO)
    pair = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([photo, photo[:, ::-1]], axis=1)).save(pair)  # two faces, side by side
    _, outcome = _job(model, detector, tmp_path, photos=(str(pair),), max_seconds=0.04)
    assert re.search(r"photo 1 \(pair.png\): 2 faces found; the largest one \(on the (left|right)\) is used", outcome.status)
    jpeg = tmp_path / "astronaut.jpg"
    Image.fromarray(photo).save(jpeg, quality=85)
    _, single = _job(model, detector, tmp_path, photos=(str(jpeg),), max_seconds=0.04)
    assert "faces found" not in single.status

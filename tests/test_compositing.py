"""Native-resolution compositing (animation/compositing.py): a still background, no ghost outline, the outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talking_head.animation.compositing import NativeCompositor, check_output, head_mask
from talking_head.face.framing import CropBox, crop_image, paste_back, points_from_crop
from talking_head.nets.warp import warp_person_crops
from tests._synthetic import template_landmarks

SIZE = 256
BOX = CropBox(150.0, 120.0, 300.0)


def _scene(height: int = 600, width: int = 640) -> np.ndarray:
    """A black head (hair to the crop's sides and top) on white: every mid-grey pixel is an edge."""
    photo = np.full((height, width, 3), 255, np.uint8)
    centre = (round(BOX.x0 + 0.5 * BOX.size), round(BOX.y0 + 0.55 * BOX.size))
    axes = (round(0.45 * BOX.size), round(0.46 * BOX.size))
    cv2.ellipse(photo, centre, axes, 0, 0, 360, (0, 0, 0), -1, cv2.LINE_AA)
    return photo


def _compositor(photo: np.ndarray, **kwargs) -> tuple[NativeCompositor, np.ndarray, np.ndarray]:
    shot = crop_image(photo, BOX, SIZE)
    points = template_landmarks(SIZE)
    return NativeCompositor(photo, BOX, shot, points, **kwargs), shot, points


def _moved(points: np.ndarray, dx: float = 8.0, dy: float = 4.0) -> np.ndarray:
    return (points + (dx, dy)).astype(np.float32)


def _translucent(image: np.ndarray) -> int:
    """Pixels neither near black nor near white: the edges, and a ghost's translucent outline."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return int(((grey > 48) & (grey < 208)).sum())


def test_unmoved_head_gives_back_the_photo():
    photo = _scene()
    compositor, shot, points = _compositor(photo)
    warp = warp_person_crops(shot[None], points[None], points[None])[0]
    out = compositor(warp, points)
    assert out.shape == photo.shape
    assert np.abs(out.astype(int) - photo).mean() < 0.5


def test_background_outside_twice_the_face_box_stays_exactly_still():
    photo = _scene()
    compositor, shot, points = _compositor(photo)
    target = _moved(points, 10.0, 6.0)
    warp = warp_person_crops(shot[None], points[None], target[None])[0]
    out = compositor(np.clip(warp.astype(int) + 20, 0, 255).astype(np.uint8), target)  # G changed the crop too
    face = points_from_crop(points, BOX, SIZE)
    low, high = face.min(0), face.max(0)
    centre, half = (low + high) / 2, (high - low)  # twice the box: half-sides = the box's sides
    outside = np.ones(photo.shape[:2], bool)
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int)
    outside[max(0, y0) : y1, max(0, x0) : x1] = False
    assert np.array_equal(out[outside], photo[outside])
    assert not np.array_equal(out, photo)  # the head did move


def test_no_ghost_outline_where_the_motion_fades_out():
    """A moved head faded into a still photo must not show two outlines.

    Measure: the scene is black and white, so the only mid-grey pixels are
    edges, about one pixel wide. A warp moves and stretches edges but keeps
    them one sharp edge; a cross-fade of the moved head with the unmoved photo
    (today's feathered paste-back) leaves both outlines, translucent, and the
    band between them grey. The count of grey pixels in the crop box grows by
    the displacement × the outline's length there (10 px here: 5× the grey
    pixels), a warp's by a fraction of a pixel per edge pixel.
    """
    photo = _scene()
    compositor, shot, points = _compositor(photo)
    target = _moved(points, 10.0, 6.0)
    warp = warp_person_crops(shot[None], points[None], target[None])[0]
    before = _translucent(photo)
    native = _translucent(compositor(warp, target))
    pasted = _translucent(paste_back(photo, warp, BOX))
    assert pasted > 3.0 * before  # the measure sees the old ghost (5.2× here)
    assert native < 1.5 * before  # resampling and stretching soften edges a little (1.23× from the upsampled layer)


def test_no_border_streaks_when_the_head_moves_towards_the_crop_edge():
    """The photo is sampled past the crop's edge, not the crop's border row repeated (vertical streaks)."""
    photo = _scene()
    noise = np.random.default_rng(0).integers(0, 255, photo.shape, dtype=np.uint8)
    photo = np.where(photo > 128, noise, photo).astype(np.uint8)  # a textured background
    compositor, shot, points = _compositor(photo)
    target = _moved(points, 0.0, -14.0)  # up: the hair's top samples from above
    warp = warp_person_crops(shot[None], points[None], target[None])[0]
    out = compositor(warp, target)
    top = int(BOX.y0) + 2
    rows = out[top : top + 6, int(BOX.x0) : int(BOX.x0 + BOX.size)].astype(float)
    assert np.abs(np.diff(rows, axis=0)).mean() > 20  # texture, not one row repeated


def test_head_mask_is_one_on_the_face_and_zero_far_away():
    points = points_from_crop(template_landmarks(SIZE), BOX, SIZE)
    mask = head_mask(points, (600, 640))
    nose = np.round(points[30]).astype(int)
    assert mask[nose[1], nose[0]] == 1.0
    assert mask[:20].max() == 0.0 and mask[:, :40].max() == 0.0
    assert 0.0 <= mask.min() and mask.max() <= 1.0


@pytest.mark.parametrize("output, side", [("crop-256", 256), ("crop-512", 512), ("crop-1024", 1024)])
def test_crop_outputs_have_their_side(output, side):
    photo = _scene()
    compositor, shot, points = _compositor(photo, output=output)
    warp = warp_person_crops(shot[None], points[None], points[None])[0]
    out = compositor(warp, points)
    assert out.shape == (side, side, 3)
    reference = crop_image(photo, BOX, side)
    assert np.abs(out.astype(int) - reference).mean() < 3.0


def test_a_large_photo_is_downscaled_to_the_limit_with_a_notice():
    photo = cv2.resize(_scene(), (1280, 1200), interpolation=cv2.INTER_NEAREST)
    shot = crop_image(photo, BOX, SIZE)
    compositor = NativeCompositor(photo, BOX, shot, template_landmarks(SIZE), limit=640)
    assert compositor.notice is not None and "640" in compositor.notice
    out = compositor(shot, template_landmarks(SIZE))
    assert out.shape == (600, 640, 3)
    small = NativeCompositor(_scene(), BOX, crop_image(_scene(), BOX, SIZE), template_landmarks(SIZE))
    assert small.notice is None


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="photo"):
        check_output("crop-300")


def test_the_cli_names_the_same_outputs_and_limit():
    from talking_head.animation import compositing
    from talking_head.cli import animate

    assert animate.OUTPUTS == compositing.OUTPUTS and animate.DEFAULT_LIMIT == compositing.DEFAULT_LIMIT


def test_a_head_that_does_not_move_is_given_back_exactly():
    """The photo is sampled from a layer upsampled 2× whose every other pixel is the photo's own: no blur."""
    noise = np.random.default_rng(1).integers(0, 255, (600, 640, 3), dtype=np.uint8)
    compositor, _, points = _compositor(noise)
    displacement, warp = compositor.fields(points[None])[0]
    out = compositor(np.clip(warp, 0, 255).astype(np.uint8), points, (np.zeros_like(displacement), warp))
    assert np.abs(out.astype(int) - noise).max() <= 1  # G's correction rounds to at most 1


def test_a_subpixel_move_keeps_the_photos_sharpness():
    """Half a pixel of motion over fine texture: bicubic from the upsampled layer is at least as sharp as
    Lanczos-4 sampling of the photo itself (plain bicubic of the photo loses a fifth: 0.80 here)."""
    texture = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 255, (600, 640, 3), dtype=np.uint8), (0, 0), 0.7)
    compositor, shot, points = _compositor(texture)
    target = _moved(points, 0.5 * SIZE / BOX.size, 0.5 * SIZE / BOX.size)  # half a photo pixel
    displacement, warp = compositor.fields(target[None])[0]
    out = compositor(np.clip(warp, 0, 255).astype(np.uint8), target, (displacement, warp))
    y0, y1, x0, x1 = compositor.region
    positions = compositor.photo_map(displacement)
    reference = cv2.remap(texture, positions, None, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT101)
    cubic = cv2.remap(texture, positions, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    face = (slice(80, 260), slice(100, 260))  # well inside the head, where the mask is 1
    laplacian = lambda image: cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[face].var()  # noqa: E731
    assert laplacian(out[y0:y1, x0:x1]) >= 0.95 * laplacian(reference)
    assert laplacian(cubic) < 0.85 * laplacian(reference)  # what the layer is for


def test_a_move_past_the_layers_reach_samples_the_photo_itself():
    photo = _scene()
    compositor, shot, points = _compositor(photo)
    target = _moved(points, 12.0, -8.0)
    warp = warp_person_crops(shot[None], points[None], target[None])[0]
    within = compositor(warp, target)
    compositor.max_move = 0.0  # every move is past the reach now
    beyond = compositor(warp, target)
    assert np.abs(within.astype(int) - beyond).mean() < 0.5  # the same frame, sampled from the photo


def test_frames_are_streamed_not_held():
    """Memory while a clip streams through ``frames`` does not grow with the clip (a batch of 8 at most)."""
    import tracemalloc
    from types import SimpleNamespace

    photo = _scene()
    compositor, shot, points = _compositor(photo)

    def clip(count: int):
        for index in range(count):
            target = _moved(points, 6.0 * np.sin(index / 3), 0.0)
            yield SimpleNamespace(result=shot, landmarks=target)

    peaks = []
    for count in (16, 64):
        tracemalloc.start()
        for _, frame in compositor.frames(clip(count)):
            assert frame.shape == photo.shape
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + photo.nbytes  # four times the frames, not four times the memory
    assert peaks[1] < 12 * photo.nbytes  # 64 frames at full size would be 64×


def test_the_frames_own_warp_stands_in_for_the_compositors():
    """With one shot, G's warp input (``frame.warp``) is the compositor's shot warped by the same spline."""
    from types import SimpleNamespace

    photo = _scene()
    compositor, shot, points = _compositor(photo)
    targets = [_moved(points, dx, 0.0) for dx in (3.0, -5.0, 8.0)]
    warps = warp_person_crops(np.repeat(shot[None], 3, 0), np.repeat(points[None], 3, 0), np.stack(targets))
    frames = [SimpleNamespace(result=w, landmarks=t, warp=w) for w, t in zip(warps, targets)]
    made = [out for _, out in compositor.frames(frames)]
    compositor.given_warps = True
    given = [out for _, out in compositor.frames(frames)]
    assert all(np.abs(a.astype(int) - b).mean() < 0.3 for a, b in zip(made, given))

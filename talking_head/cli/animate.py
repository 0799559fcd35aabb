"""``python -m talking_head animate``: animate photos of a person with a driving clip or landmark track."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from talking_head.cli.options import add_weights_arguments

# compositing.OUTPUTS and DEFAULT_LIMIT (tests check they agree), here so that --help imports no torch.
OUTPUTS = ("photo", "crop-256", "crop-512", "crop-1024")
DEFAULT_LIMIT = 1024

if TYPE_CHECKING:  # annotations only: the command imports the library when it runs, so --help stays fast
    from talking_head.animation.person import Person
    from talking_head.animation.pipeline import DrivingMotion, RenderResult
    from talking_head.animation.workload import DrivingPlan
    from talking_head.face.detection import LandmarkDetector
    from talking_head.nets.model import TalkingHeadModel
    from talking_head.nets.precision import Precision
    from talking_head.web.limits import AppLimits

log = logging.getLogger(__name__)


def _reference(text: str) -> int | str:
    if text in ("neutral", "first"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'neutral', 'first' or a frame number, got {text!r}"
        ) from None


def _at_least(minimum: float, kind: type = int):  # -> argparse type
    """A finite number (a whole one for ``int``) of at least ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if kind is int and not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return kind(value)

    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--paste-back, --output and --output-limit (native-resolution compositing, animation/compositing.py)."""
    parser.add_argument(
        "--paste-back",
        action="store_true",
        help="paste the result back into the first photo (feathered edges)",
    )
    parser.add_argument(
        "--output",
        choices=OUTPUTS,
        help="composite at the output's resolution: photo = the whole photo, only the head moving "
        "(longer side at most --output-limit), or the face crop at 256/512/1024 px "
        "(default: G's own 256 px crop)",
    )
    parser.add_argument(
        "--output-limit",
        type=_at_least(64),
        default=DEFAULT_LIMIT,
        help=f"--output photo: longer side at most this many pixels; larger photos are downscaled first (default {DEFAULT_LIMIT})",
    )


def _multiplier(text: str) -> float:
    value = _at_least(0.0, float)(text)
    if value > 2:
        raise argparse.ArgumentTypeError(f"must be at most 2, got {text}")
    return value


def _add_motion_control_arguments(parser: argparse.ArgumentParser) -> None:
    """--multiplier, --region, --closed-lips, --blinks (face/motion_controls.py)."""
    parser.add_argument(
        "--multiplier", type=_multiplier, default=1.0, help="how strongly the driver's expression moves the face, 0..2 (default 1)"
    )
    parser.add_argument(
        "--region",
        choices=("all", "lips", "eyes", "pose", "expression"),
        default="all",
        help="what the driver moves: all (default), lips, eyes, pose (head pose only), expression (no head pose)",
    )
    parser.add_argument(
        "--closed-lips", action="store_true", help="close the photo's lips before the driver's motion is added"
    )
    parser.add_argument(
        "--blinks", choices=("driver", "none"), default="driver", help="driver: the driver's blinks (default); none: no blinks"
    )


def motion_controls(args: argparse.Namespace):  # -> MotionControls
    """The motion controls of the command line."""
    from talking_head.face.motion_controls import MotionControls

    return MotionControls(args.multiplier, args.region, args.closed_lips, args.blinks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``animate`` command."""
    parser.add_argument(
        "--photos", nargs="+", required=True, metavar="PHOTO", help="one or more photos of the person"
    )
    parser.add_argument(
        "--driving",
        required=True,
        metavar="CLIP_OR_TRACK",
        help="driving clip (.mp4, ...) or landmark track (.npz)",
    )
    parser.add_argument("--out", required=True, metavar="OUT.mp4", help="result video (.mp4, .m4v or .mov)")
    parser.add_argument(
        "--overlay",
        metavar="OVERLAY.mp4",
        help="also write driving frame | landmark image | result side by side",
    )
    parser.add_argument(
        "--steps",
        type=_at_least(0),
        default=0,
        help="fine-tuning steps on the photos (0 = feed-forward; default 0)",
    )
    parser.add_argument(
        "--mode",
        choices=("relative", "absolute"),
        default="relative",
        help="relative: keep the person's face shape, add the driver's motion (default); absolute: the driver's landmarks (the paper)",
    )
    add_weights_arguments(parser)
    parser.add_argument(
        "--smoothing",
        type=_at_least(0.0, float),
        default=1.0,
        help="temporal smoothing of the driving landmarks, in frames (0 = off; default 1)",
    )
    parser.add_argument(
        "--reference",
        type=_reference,
        default="neutral",
        help="relative mode: driving frame the motion is measured from: neutral (default), first, or a frame number",
    )
    _add_output_arguments(parser)
    _add_motion_control_arguments(parser)
    parser.add_argument(
        "--watermark", action="store_true", help="draw a visible 'SYNTHETIC' mark on every frame"
    )
    parser.add_argument(
        "--max-seconds", type=_positive_seconds, help="use only the first N seconds of the driving clip (N > 0)"
    )
    parser.add_argument(
        "--batch-size", type=_at_least(1), default=8, help="frames rendered per batch (default 8)"
    )
    _add_device_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of fine-tuning (shot sampling and flips)")
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="lift the app's limits: 100 steps, 8 photos, 10 s of motion at 30 fps ($TALKING_HEAD_MAX_*)",
    )


def _add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the networks run, and the landmark detector."""
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="auto: bf16 where it is measured faster (CUDA, CPUs with bf16 units), else fp32 "
        "(default: $TALKING_HEAD_PRECISION or auto)",
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "torch"),
        help="renderer on a CPU: auto (ONNX Runtime when installed and measured faster), onnx, torch "
        "(default: $TALKING_HEAD_RUNTIME or auto; always PyTorch on CUDA)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument(
        "--landmarks",
        default=None,
        choices=("auto", "fan", "dlib"),
        help="landmark detector (default: $TALKING_HEAD_LANDMARKS or auto)",
    )


def _print_reports(reports) -> None:  # list[PhotoReport]
    for r in reports:
        status = "ok" if r.usable else "SKIPPED"
        detail = (
            f"face {r.box_size:.0f} px, yaw {r.yaw:+.0f}°, sharpness {r.blur:.0f}"
            if r.face_found
            else "no face"
        )
        note = f": {r.reason}" if r.reason else ""
        print(f"  {r.name}: {status} ({detail}){note}")


def _progress_bar(desc: str, total: int):  # -> tqdm
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame" if desc != "fine-tuning" else "step", leave=False)


def _check_paths(args: argparse.Namespace) -> None:
    """Fail before minutes of fine-tuning, not after: outputs are MP4s in existing folders,
    the photos exist, the driving track is valid (or the clip readable)."""
    from talking_head.errors import ImageReadError, UnsupportedFileError, VideoReadError, VideoWriteError
    from talking_head.face.tracking import LandmarkTrack, check_driving_track
    from talking_head.media.video import probe_video
    from talking_head.media.video_writer import check_output_suffix

    for out in (args.out, args.overlay):
        if out is not None:
            check_output_suffix(out)
            if not Path(out).resolve().parent.is_dir():
                raise VideoWriteError(f"cannot write {out}: its folder does not exist; create it first")
    for photo in args.photos:
        if not Path(photo).is_file():
            raise ImageReadError(f"photo not found: {photo}; check the path")
    driving = Path(args.driving)
    is_track = driving.suffix.lower() == ".npz"
    if not driving.is_file():
        error = UnsupportedFileError if is_track else VideoReadError
        raise error(f"driving file not found: {driving}; check the path")
    if is_track:
        check_driving_track(LandmarkTrack.load(driving, name=args.driving), f"the driving track {args.driving}")
    else:
        probe_video(driving, max_seconds=args.max_seconds)


def _finetune(
    args: argparse.Namespace, model: TalkingHeadModel, person: Person, precision: Precision
) -> Person:
    """Fine-tune ``args.steps`` steps with a progress bar; print the time per step."""
    import torch

    from talking_head.animation import pipeline

    torch.manual_seed(args.seed)
    config = pipeline.FinetuneConfig(seed=args.seed)
    with _progress_bar("fine-tuning", args.steps) as bar:

        def on_step(step: int, total: int, losses: dict[str, float]) -> None:
            shown = {"content": f"{losses['content']:.3f}"}
            if config.loss.adversarial_on:  # D' runs only with adversarial weights (not by default)
                shown["d"] = f"{losses['discriminator']:.3f}"
            bar.set_postfix(shown, refresh=False)
            bar.update(1)

        tune_start = time.perf_counter()
        person = pipeline.finetune_person(
            model,
            person,
            args.steps,
            callback=on_step,
            config=config,
            precision=precision,
        )
    tune_s = time.perf_counter() - tune_start
    print(f"fine-tuned {args.steps} steps in {tune_s:.1f} s ({1000 * tune_s / args.steps:.0f} ms/step)")
    if person.finetune_notice:
        print(f"warning: {person.finetune_notice}", file=sys.stderr)
    return person


def _motion_limits(args: argparse.Namespace, limits: AppLimits | None) -> tuple[float | None, float | None]:
    """(seconds, fps) the driving motion is cut and resampled to: --max-seconds and the app's limits."""
    if limits is None:
        return args.max_seconds, None
    seconds = limits.max_driving_seconds
    return (seconds if args.max_seconds is None else min(args.max_seconds, seconds)), limits.max_fps


def _plan(args: argparse.Namespace, limits: AppLimits | None) -> DrivingPlan:
    """What of the driving motion is used; prints what was cut and why."""
    from talking_head.animation.workload import plan_driving

    seconds, fps = _motion_limits(args, limits)
    plan = plan_driving(args.driving, seconds, fps)
    kind = "track" if plan.is_track else "clip"
    if plan.trimmed:
        why = ""
        if limits is not None and plan.seconds >= limits.max_driving_seconds:
            why = " (the app's limit, TALKING_HEAD_MAX_SECONDS; --no-limits uses all of it)"
        print(f"note: the driving {kind} is {plan.duration:.1f} s long; the first {plan.seconds:g} s are used{why}")
    if plan.resampled:
        print(
            f"note: the driving {kind} is at {plan.source_fps:g} fps; it is resampled to {plan.fps:g} fps "
            "(the app's limit, TALKING_HEAD_MAX_FPS; --no-limits keeps every frame)"
        )
    return plan


def _check_work(args: argparse.Namespace, limits: AppLimits | None, plan: DrivingPlan) -> None:
    """Refuse more steps or photos than the app allows (unless --no-limits), saying how long they would take."""
    from talking_head.animation.workload import MEASURED_RATES, estimate_seconds, format_duration
    from talking_head.errors import TalkingHeadError

    if limits is None:
        return
    if args.steps > limits.max_steps:
        tuning = format_duration(estimate_seconds(args.steps, plan)["fine-tuning"])
        raise TalkingHeadError(
            f"--steps {args.steps} is above the app's limit of {limits.max_steps} fine-tuning steps "
            f"(about {tuning} of fine-tuning on {MEASURED_RATES.machine}); pass --no-limits to run it anyway, "
            "or raise TALKING_HEAD_MAX_STEPS"
        )
    if len(args.photos) > limits.max_photos:
        raise TalkingHeadError(
            f"{len(args.photos)} photos were given; the app's limit is {limits.max_photos} (the paper's K = 8 "
            "shots). Pass fewer photos, or --no-limits to use them all"
        )


def _print_work(args: argparse.Namespace, plan: DrivingPlan, device: str, precisions: tuple[str, ...]) -> None:
    """The work and its estimate, before any of it starts; says when this machine is not the one measured."""
    from talking_head.animation.workload import MEASURED_RATES, estimate_seconds, format_duration, same_kind
    from talking_head.evaluation.machine import machine_info

    stages = estimate_seconds(args.steps, plan)
    verb = "render" if plan.is_track else "track and render"
    print(
        f"work: {len(args.photos)} photo{'s' if len(args.photos) != 1 else ''}, {args.steps} fine-tuning steps, "
        f"{plan.frames} frames to {verb} ({plan.seconds:.1f} s at {plan.fps:g} fps)"
    )
    detail = ", ".join(f"{stage} {format_duration(value)}" for stage, value in stages.items() if value > 0)
    info = machine_info()
    here = (
        f"{info['cpu']} ({info['cpu_family_model']}; bf16 units: {', '.join(info['cpu_bf16_flags']) or 'none'}), "
        f"{device}, {'/'.join(dict.fromkeys(precisions))}"
    )
    caveat = "" if same_kind(MEASURED_RATES, info["cpu_family_model"], precisions, device) else (
        ": another kind of machine, so the time may differ several times over (the progress bars show the real rate)"
    )
    print(
        f"estimate: about {format_duration(sum(stages.values()))} ({detail}) at the speed measured on "
        f"{MEASURED_RATES.machine}; this machine: {here}{caveat}"
    )


def _load_driving(
    args: argparse.Namespace,
    model: TalkingHeadModel,
    detector: LandmarkDetector,
    limits: AppLimits | None,
    plan: DrivingPlan,
) -> DrivingMotion:
    """The driving motion within the limits (a clip tracked with a progress bar, or a saved track)."""
    import dataclasses

    from talking_head.animation import pipeline
    from talking_head.animation.overlay import track_clip
    from talking_head.animation.workload import limit_track
    from talking_head.face.tracking import LandmarkTrack

    seconds, fps = _motion_limits(args, limits)
    size = model.config.image_size
    if plan.is_track:
        track = limit_track(LandmarkTrack.load(args.driving, name=Path(args.driving).name), seconds, fps)
        motion = pipeline.load_driving(track, size, smoothing=args.smoothing)
    else:
        with _progress_bar("landmarks", plan.frames) as bar:
            track = track_clip(
                args.driving, detector, max_seconds=seconds, max_fps=fps,
                progress=lambda _stage, done, _total: bar.update(done - bar.n),
            )  # fmt: skip
        motion = pipeline.load_driving(track, size, smoothing=args.smoothing)
        # A track knows no clip: attach it for the audio and the overlay's driving frames.
        motion = dataclasses.replace(motion, video=Path(args.driving), has_audio=plan.has_audio, max_seconds=seconds)
    print(f"driving: {len(motion)} frames at {motion.fps:g} fps{' with audio' if motion.has_audio else ''}")
    return motion


def _render(
    args: argparse.Namespace,
    model: TalkingHeadModel,
    person: Person,
    motion: DrivingMotion,
    precision: Precision,
) -> RenderResult:
    """Render the result (and overlay) MP4s with a progress bar."""
    from talking_head.animation import pipeline

    with _progress_bar("rendering", len(motion)) as bar:
        return pipeline.render_video(
            model,
            person,
            motion,
            args.out,
            overlay=args.overlay,
            mode=args.mode,
            reference=args.reference,
            paste_into_photo=args.paste_back,
            output=args.output,
            output_limit=args.output_limit,
            controls=motion_controls(args),
            batch_size=args.batch_size,
            precision=precision,
            watermark=args.watermark,
            progress=lambda done, total: bar.update(done - bar.n),
            runtime=args.runtime,
        )


def run(args: argparse.Namespace) -> int:
    """Embed, fine-tune, track the driver, render; print a summary."""
    from talking_head.animation import pipeline
    from talking_head.face.landmarks import get_detector
    from talking_head.nets.precision import resolve_precision
    from talking_head.web.limits import AppLimits

    _check_paths(args)
    limits = None if args.no_limits else AppLimits.from_env()
    plan = _plan(args, limits)
    _check_work(args, limits, plan)
    started = time.perf_counter()
    model = pipeline.load_model(args.weights, device=args.device, revision=args.revision)
    detector = get_detector(args.landmarks) if args.landmarks else get_detector()
    precision = resolve_precision(args.precision, pipeline.model_device(model))  # rendering
    tuning = resolve_precision(args.precision, pipeline.model_device(model), task="train")
    print(
        f"weights: {args.weights} ({model.config.image_size} px, device {pipeline.model_device(model)}, "
        f"rendering {precision.name}, fine-tuning {tuning.name}); landmarks: {detector.name}"
    )

    _print_work(args, plan, pipeline.model_device(model).type, (tuning.name, precision.name) if args.steps else (precision.name,))
    person = pipeline.embed_person(model, args.photos, detector=detector)
    print(f"photos ({len(person.shots)} of {len(args.photos)} usable):")
    _print_reports(person.reports)
    if args.steps > 0:
        person = _finetune(args, model, person, precision)
    motion = _load_driving(args, model, detector, limits, plan)
    result = _render(args, model, person, motion, precision)

    total_s = time.perf_counter() - started
    print(
        f"wrote {result.out} ({result.num_frames} frames, {result.fps:g} fps, {'with' if result.has_audio else 'no'} audio)"
    )
    if result.overlay is not None:
        print(f"wrote {result.overlay}")
    print(
        f"rendering: {result.seconds:.1f} s ({result.num_frames / max(result.seconds, 1e-9):.1f} frames/s); total {total_s:.1f} s"
    )
    return 0

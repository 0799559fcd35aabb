"""Rendering a person in batches: the warp, then G on the chosen runtime, one batch ahead of the caller.

- :func:`rendering_setup`: the rendering precision (:mod:`talking_head.nets.precision`)
  and runtime (:mod:`talking_head.nets.runtime`: ONNX Runtime or PyTorch),
  resolved once per call from the arguments or the environment.
- :func:`rendered_batches`: landmarks ``(T, 68, 2)`` → :class:`RenderedBatch` es
  (landmark images y, the warp, G's output), made in a background thread one
  batch ahead (:func:`render_ahead`): while the caller pastes, draws and
  encodes batch k, batch k + 1 is warped and rendered (ONNX Runtime and
  PyTorch's kernels run without the GIL).
- :func:`warm_up_rendering`: resolves the runtime (exporting or loading G's
  graph, measuring for ``auto``) and runs G once, so a page's first click
  is as fast as the next.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from talking_head.animation.person import Person, eval_mode, landmark_images, model_device
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision, resolve_precision
from talking_head.nets.runtime import Renderer, Runtime, resolve_runtime
from talking_head.nets.tensors import images_to_tensor, tensor_to_images
from talking_head.nets.warp import warp_shots

# Batches rendered ahead of the caller (0: in the caller's thread, no overlap).
RENDER_AHEAD = 1
# The next batch's landmark images and warp are made while G renders the current one.
WARP_AHEAD = True
_POLL_S = 0.05  # how often a blocked producer checks whether the caller has gone

Item = TypeVar("Item")


@dataclass(frozen=True)
class RenderedBatch:
    """One batch of rendered frames and what they were made from."""

    start: int  # index of the batch's first frame
    points: np.ndarray  # the landmarks drawn in y, crop pixels (B, 68, 2)
    y_images: np.ndarray  # the landmark images y given to G (B, S, S, 3) uint8
    results: np.ndarray  # G's output (B, S, S, 3) uint8
    warps: np.ndarray | None  # the shots warped to ``points`` (B, S, S, 3) uint8; None unless warp-guided


def rendering_setup(
    model: TalkingHeadModel, precision: str | Precision | None = None, runtime: str | Runtime | None = None
) -> tuple[Precision, Runtime]:
    """The rendering precision and runtime for ``model`` (``None``: ``$TALKING_HEAD_PRECISION`` / ``$TALKING_HEAD_RUNTIME``)."""
    precision = resolve_precision(precision, model_device(model))
    return precision, resolve_runtime(runtime, model.generator, precision)


def _warp_sources(model: TalkingHeadModel, person: Person) -> tuple[torch.Tensor, torch.Tensor] | None:
    """What a warp-guided G warps: the person's shots ``(T, 3, S, S)`` in [-1, 1] and their landmarks
    ``(T, 68, 2)`` on the model's device, made once per video; ``None`` for a model that is not warp-guided."""
    if not model.config.warp_guided:
        return None
    device = model_device(model)
    shots = images_to_tensor(person.shots, device)
    points = torch.from_numpy(np.asarray(person.shot_landmarks, dtype=np.float32)).to(device)
    return shots, points


def _prepare(
    points: np.ndarray, size: int, sources: tuple[torch.Tensor, torch.Tensor] | None, device: torch.device
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor | None]:
    """G's inputs for landmarks ``(B, 68, 2)``: their images y (uint8 and as a tensor) and, warp-guided, the warp."""
    y_images = landmark_images(points, size)  # (B, S, S, 3)
    with torch.inference_mode():
        warp = None
        if sources is not None:
            warp = warp_shots(*sources, torch.from_numpy(np.asarray(points, np.float32)).to(device))
        return y_images, images_to_tensor(y_images, device), warp  # y (B, 3, S, S), warp (B, 3, S, S)


def generate_images(
    renderer: Renderer, psi: torch.Tensor, y: torch.Tensor, warp: torch.Tensor | None
) -> np.ndarray:
    """G'(y, ψ'[, warp]) → uint8 crops ``(B, S, S, 3)``, on a PyTorch module or an ONNX Runtime renderer."""
    modes = eval_mode(renderer) if isinstance(renderer, torch.nn.Module) else contextlib.nullcontext()
    with torch.inference_mode(), modes:
        return tensor_to_images(renderer(y, adain_params=psi, warp=warp))


def _batches(
    model: TalkingHeadModel, person: Person, points: np.ndarray, batch_size: int, renderer: Renderer
) -> Iterator[RenderedBatch]:
    """Batch by batch; with :data:`WARP_AHEAD` the next batch's y and warp are made while G renders this one."""
    size, device = model.config.image_size, model_device(model)
    prepare = functools.partial(_prepare, size=size, sources=_warp_sources(model, person), device=device)
    psi = person.adain_params.to(device)
    chunks = [points[start : start + batch_size] for start in range(0, len(points), batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="talking-head-warp") as pool:
        pending = pool.submit(prepare, chunks[0]) if chunks else None
        for index, chunk in enumerate(chunks):
            y_images, y, warp = pending.result()
            if index + 1 < len(chunks):
                pending = pool.submit(prepare, chunks[index + 1])
                if not WARP_AHEAD:
                    pending.result()
            results = generate_images(renderer, psi, y, warp)
            warps = tensor_to_images(warp) if warp is not None else None
            yield RenderedBatch(index * batch_size, chunk, y_images, results, warps)


def rendered_batches(
    model: TalkingHeadModel,
    person: Person,
    points: np.ndarray,
    batch_size: int,
    precision: Precision,
    runtime: Runtime,
    ahead: int | None = None,
) -> Iterator[RenderedBatch]:
    """Render ``person`` for ``(T, 68, 2)`` crop landmarks, ``batch_size`` frames a call, ``ahead`` batches early.

    G' (the person's fine-tuned G, else the model's) runs on ``runtime`` at
    ``precision`` (:func:`rendering_setup`), without gradients. ``ahead``:
    batches rendered ahead in a background thread (``None``: :data:`RENDER_AHEAD`;
    0: in the caller's thread).
    """
    ahead = RENDER_AHEAD if ahead is None else ahead
    generator = person.generator if person.generator is not None else model.generator
    renderer = runtime.renderer(generator, precision)
    batches = _batches(model, person, points, batch_size, renderer)
    return render_ahead(batches, ahead) if ahead > 0 else batches


def _put(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer stops first; whether it was put."""
    while not stop.is_set():
        with contextlib.suppress(queue.Full):
            items.put(item, timeout=_POLL_S)
            return True
    return False


def render_ahead(items: Iterator[Item], depth: int = RENDER_AHEAD) -> Iterator[Item]:
    """Run the iterator ``items`` in a background thread, at most ``depth`` items ahead of the consumer.

    Its exceptions are raised in the consumer; a consumer that stops early
    (an error, a cancel) stops it after the item in progress.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                if not _put(out, (item, None), stop):
                    return
            _put(out, (end, None), stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(out, (end, error), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="talking-head-render", daemon=True)
    thread.start()
    try:
        while True:
            item, error = out.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def warm_up_rendering(
    model: TalkingHeadModel,
    batch_size: int = 8,
    precision: str | Precision | None = None,
    runtime: str | Runtime | None = None,
) -> Runtime:
    """Resolve the rendering runtime and run G once at ``batch_size`` and once at 1 (inputs of zeros).

    Takes what a first click would otherwise pay: the graph export or load,
    ``auto``'s measurement, ONNX Runtime's session and PyTorch's first-call
    kernel set-up. Returns the runtime.
    """
    precision, runtime = rendering_setup(model, precision, runtime)
    config, device = model.config, model_device(model)
    renderer = runtime.renderer(model.generator, precision)
    psi = torch.zeros(model.generator.n_adain_params, device=device)
    for batch in (batch_size, 1):
        y = torch.zeros(batch, config.landmark_channels, config.image_size, config.image_size, device=device)
        warp = (
            torch.zeros(batch, config.image_channels, *y.shape[-2:], device=device)
            if config.warp_guided
            else None
        )
        with torch.inference_mode(), eval_mode(model.generator):
            renderer(y, adain_params=psi, warp=warp)
    return runtime

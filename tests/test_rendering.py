"""Rendering one batch ahead: the same frames as rendering in line, errors and early stops handled."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights
from conftest import ASTRONAUT

from talking_head.animation import pipeline, rendering
from talking_head.animation.rendering import render_ahead


def test_render_ahead_keeps_order_and_runs_in_another_thread() -> None:
    threads = []

    def items():
        for i in range(5):
            threads.append(threading.current_thread())
            yield i

    assert list(render_ahead(items(), depth=1)) == [0, 1, 2, 3, 4]
    assert all(t is not threading.current_thread() for t in threads)


def test_render_ahead_raises_the_producers_error_in_the_consumer() -> None:
    def items():
        yield 1
        raise RuntimeError("G failed")

    got = render_ahead(items())
    assert next(got) == 1
    with pytest.raises(RuntimeError, match="G failed"):
        next(got)


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    made, closed = [], threading.Event()

    def items():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    got = render_ahead(items(), depth=1)
    assert next(got) == 0
    got.close()  # a cancel: the generator is closed after the first item
    assert closed.wait(5.0)
    time.sleep(0.1)
    assert len(made) <= 3  # at most the item in progress and the queue's one beyond the consumed one


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random weights, the example photo embedded, and 11 frames of landmarks near its own."""
    model = pipeline.load_model(make_tiny_weights(tmp_path_factory.mktemp("w")), device="cpu")
    person = pipeline.embed_person(model, [ASTRONAUT])
    rng = np.random.default_rng(0)
    track = person.source_landmarks + rng.normal(0, 1.0, (11, 68, 2)).astype(np.float32)  # batches of 8 and 3
    return model, person, track


def test_rendering_ahead_gives_the_frames_of_rendering_in_line(tiny, monkeypatch) -> None:
    model, person, track = tiny
    precision, runtime = rendering.rendering_setup(model, "fp32", "torch")
    monkeypatch.setattr(rendering, "WARP_AHEAD", False)
    in_line = list(rendering.rendered_batches(model, person, track, 8, precision, runtime, ahead=0))
    monkeypatch.setattr(rendering, "WARP_AHEAD", True)
    ahead = list(rendering.rendered_batches(model, person, track, 8, precision, runtime, ahead=1))
    assert [b.start for b in ahead] == [b.start for b in in_line] == [0, 8]
    for a, b in zip(ahead, in_line):
        assert np.array_equal(a.results, b.results) and np.array_equal(a.y_images, b.y_images)
        assert a.warps is not None and np.array_equal(a.warps, b.warps)  # the tiny preset is warp-guided
    assert sum(len(b.results) for b in ahead) == len(track)


def test_warm_up_runs_g_and_returns_the_runtime(tiny) -> None:
    model = tiny[0]
    assert rendering.warm_up_rendering(model, batch_size=2, precision="fp32", runtime="torch").name == "torch"

"""The small-image model: which images it takes, at what size, loaded once and only when needed, and how its
failures and its use are reported."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from colorize.artifacts.model_ref import DEFAULT_MODEL, DEFAULT_PHOTO_MODEL, SMALL_IMAGE_MAX_SIDE, SMALL_IMAGE_MODEL
from colorize.colorizer import Colorizer, resolve_small_model
from colorize.image.color import DEFAULT_NORMALIZATION
from colorize.image.merge import lightness


class RecordingEngine:
    """Engine-like: a constant ab per engine, and the shapes it ran."""

    def __init__(self, name: str, ab: float, stride: int = 8):
        self.model = SimpleNamespace(name=name, metadata={})
        self.backend, self.precision = "fake", "fp32"
        self.stride, self.normalization, self.ab = stride, DEFAULT_NORMALIZATION, ab
        self.shapes: list[tuple] = []
        self.closed = False

    def run(self, l: np.ndarray) -> np.ndarray:
        self.shapes.append(l.shape)
        ab = np.zeros((l.shape[0], 2, *l.shape[2:]), np.float32)
        ab[:, 0] = self.ab
        return ab

    def close(self) -> None:
        self.closed = True


def _gray(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(h * 1000 + w).integers(40, 220, (h, w), dtype=np.uint8)


def _a_of(rgb8: np.ndarray) -> float:
    """Mean CIE a* of an 8-bit RGB image (the sign tells which engine coloured it)."""
    from colorize.image.color import rgb_to_lab

    return float(rgb_to_lab(rgb8.astype(np.float64) / 255.0)[..., 1].mean())


def _colorizer(loads: list, max_side: int = 32, min_working_size: int = 64) -> tuple[Colorizer, RecordingEngine]:
    main = RecordingEngine("photo", ab=-0.2, stride=32)
    small = RecordingEngine("cifar", ab=+0.2)

    def load():
        loads.append(threading.current_thread().name)
        time.sleep(0.05)  # a slow load: concurrent first users must wait for this one, not start their own
        return small

    col = Colorizer(main, working_size=256, min_working_size=min_working_size, small_engine=load,
                    small_max_side=max_side, small_name="cifar")
    return col, small


def test_images_up_to_the_side_run_on_the_small_model_at_their_size():
    loads: list = []
    col, small = _colorizer(loads)
    assert col.describe_small() == "cifar" and loads == []  # nothing loaded before a small image comes
    tiny, edge, bigger = _gray(20, 30), _gray(32, 32), _gray(33, 20)
    p_tiny, p_edge, p_big = col.prepare(tiny), col.prepare(edge), col.prepare(bigger)
    assert len(loads) == 1 and col.describe_small() == "cifar (fake/fp32)"
    assert (p_tiny.small, p_tiny.key) == (True, (20, 30))  # its own size: no enlargement to min_working_size
    assert (p_edge.small, p_edge.key) == (True, (32, 32))
    assert (p_big.small, p_big.key) == (False, (64, 32))  # the main model's rule: enlarged to 64, stride 32
    assert (p_edge.batch_key, p_big.batch_key) == ((True, 32, 32), (False, 64, 32))  # one model per batch

    outs = col.colorize_batch([tiny, bigger, edge, tiny])
    assert [o.shape[:2] for o in outs] == [(20, 30), (33, 20), (32, 32), (20, 30)]
    assert [_a_of(o) > 0 for o in outs] == [True, False, True, True]  # small: +a*, main: -a*
    assert sorted(s[0] for s in small.shapes[-2:]) == [1, 2]  # the two 20x30 images shared one run
    for g, o in zip([tiny, bigger, edge], outs):  # the input's luminance, whichever model ran it
        assert np.abs(lightness(o) - lightness(g)).max() < 0.6


def test_run_refuses_a_mixed_batch():
    col, _ = _colorizer([])
    a, b = col.prepare(_gray(32, 32)), col.prepare(_gray(64, 64))
    with pytest.raises(ValueError, match="one batch_key"):
        col.run([a, b])


def test_the_small_model_loads_once_under_concurrent_first_use():
    loads: list = []
    col, small = _colorizer(loads)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def worker():
        barrier.wait()
        try:
            results.append(col.prepare(_gray(24, 24)).small)
        except Exception as e:  # pragma: no cover - the failure is asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [True] * 6 and len(loads) == 1
    col.close()
    assert small.closed


def test_a_small_model_that_fails_to_load_fails_each_small_image_once_tried():
    calls = []

    def broken():
        calls.append(1)
        raise FileNotFoundError("models/weights/cifar.safetensors")

    col = Colorizer(RecordingEngine("photo", -0.2, 32), small_engine=broken, small_max_side=32, small_name="cifar")
    for _ in range(3):
        with pytest.raises(RuntimeError, match="small-image model did not load: FileNotFoundError"):
            col.prepare(_gray(16, 16))
    assert calls == [1]  # not retried for every image
    assert col.colorize(_gray(40, 40)).shape == (40, 40, 3)  # larger images are not affected
    col.close()


def test_no_small_model_without_one_or_with_side_zero():
    main = RecordingEngine("photo", -0.2, 32)
    assert Colorizer(main).small_max_side == 0
    col = Colorizer(main, small_engine=RecordingEngine("cifar", 0.2), small_max_side=0)
    assert col.small_max_side == 0 and col.prepare(_gray(8, 8)).small is False
    with pytest.raises(ValueError, match="small_max_side must be >= 0"):
        Colorizer(main, small_engine=RecordingEngine("cifar", 0.2), small_max_side=-1)


def test_auto_means_the_cifar_model_for_the_default_photo_model_only():
    assert (SMALL_IMAGE_MODEL, SMALL_IMAGE_MAX_SIDE) == (DEFAULT_MODEL, 32)
    assert resolve_small_model(DEFAULT_PHOTO_MODEL, "auto") == SMALL_IMAGE_MODEL
    assert resolve_small_model("resnet18-unet", "auto") is None
    assert resolve_small_model("runs/x/model.json", "auto") is None
    assert resolve_small_model(DEFAULT_PHOTO_MODEL, "none") is None
    assert resolve_small_model(DEFAULT_PHOTO_MODEL, None) is None
    assert resolve_small_model("my.onnx", "resnet18-unet") == "resnet18-unet"


def test_load_checks_the_small_model_name_at_once():
    pytest.importorskip("onnxruntime")
    with pytest.raises((ValueError, FileNotFoundError), match="no-such-model"):
        Colorizer.load(DEFAULT_PHOTO_MODEL, "onnxruntime", "fp32", small_model="no-such-model")


def test_default_colorizer_runs_32px_images_on_the_shipped_cifar_model():
    """The real pair through the ONNX path: a 32x32 image comes out as the CIFAR-10 model alone makes it."""
    pytest.importorskip("onnxruntime")
    g = _gray(32, 32)
    with Colorizer.load(backend="onnxruntime", precision="fp32") as col, \
            Colorizer.load(DEFAULT_MODEL, "onnxruntime", "fp32") as cifar, \
            Colorizer.load(backend="onnxruntime", precision="fp32", small_model=None) as photo:
        out = col.colorize(Image.fromarray(g))
        assert col.describe_small() == "resnet18-unet (onnxruntime/fp32)"
        np.testing.assert_array_equal(np.asarray(out), np.asarray(cifar.colorize(Image.fromarray(g))))
        assert np.abs(np.asarray(out, np.int16) - np.asarray(photo.colorize(Image.fromarray(g)), np.int16)).max() > 2
        big = _gray(33, 33)  # one pixel more: the photo model, as without a small-image model
        np.testing.assert_array_equal(col.colorize(big), photo.colorize(big))

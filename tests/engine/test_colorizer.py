"""Colorizer: luminance kept, alpha kept, any size, every input kind, the prepare/finish contract, threads.

These hold for any model, so a random-init resnet18-unet at a small working size is used.
"""

import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from colorize.colorizer import Colorizer
from colorize.image.color import lab_to_rgb, rgb_to_l, rgb_to_lab
from colorize.image.merge import compose, lightness
from colorize.image.resize import working_shape

pytestmark = pytest.mark.filterwarnings("ignore:model .* random init")

# 8-bit output: each channel is rounded to 1/255; through the sRGB curve and the Y weights that moves
# L* by at most ~0.3 (steepest near black, where dL*/dcode = 903.3 / 12.92 / 255 = 0.27).
L_TOL_8BIT = 0.5
L_TOL_16BIT = 0.01  # same reasoning, 1/65535 steps
L_TOL_FLOAT = 1e-3  # float32 arithmetic only


@pytest.fixture(scope="module")
def col():
    with Colorizer.load("resnet18-unet", backend="torch", working_size=32, num_threads=1) as c:
        yield c


def _smooth_gray(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    g = 128 + 100 * np.sin(x / 5.0 + seed) * np.cos(y / 7.0) + rng.normal(0, 10, (h, w))
    return np.clip(g, 0, 255).astype(np.uint8)


def _l_of(rgb8: np.ndarray) -> np.ndarray:
    return rgb_to_l(rgb8.astype(np.float64) / 255.0)


def test_working_shape_rule():
    assert working_shape(1080, 1920, 256, 8) == (144, 256)
    assert working_shape(3000, 4000, 256, 8) == (192, 256)
    assert working_shape(200, 100, 256, 8) == (200, 100)  # small images run at their own size
    assert working_shape(1, 1, 256, 8) == (1, 1)
    assert working_shape(1, 5000, 256, 8) == (1, 256)  # a side under one stride: whole pixels, >= 1
    assert working_shape(37, 1000, 100, 8) == (4, 96)
    with pytest.raises(ValueError, match="working_size must be >= 1"):
        working_shape(10, 10, 0, 8)


def test_gray_uint8_luminance_kept_to_rounding(col):
    g = _smooth_gray(70, 90)
    out = col.colorize(g)
    assert out.shape == (70, 90, 3) and out.dtype == np.uint8
    err = np.abs(_l_of(out) - _l_of(np.repeat(g[..., None], 3, -1)))
    assert err.max() <= L_TOL_8BIT, err.max()


def test_colour_input_colour_replaced_luminance_kept(col):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = col.colorize(rgb)
    np.testing.assert_array_less(np.abs(_l_of(out) - _l_of(rgb)), L_TOL_8BIT)
    # the colour comes from the model, not the input: a gray image of the same luminance gives the same output
    rgbf = rgb.astype(np.float64) / 255.0
    y = (np.where(rgbf > 0.04045, ((rgbf + 0.055) / 1.055) ** 2.4, rgbf / 12.92) @ [0.212671, 0.715160, 0.072169])
    grayf = np.where(y > 0.0031308, 1.055 * y ** (1 / 2.4) - 0.055, 12.92 * y)
    np.testing.assert_allclose(rgb_to_l(np.repeat(grayf[..., None], 3, -1)), _l_of(rgb), atol=1e-6)
    np.testing.assert_allclose(col.colorize(grayf.astype(np.float32)), col.colorize(rgbf.astype(np.float32)), atol=1e-3)


def test_uint16_and_float_arrays_keep_dtype_and_precision(col):
    g16 = (_smooth_gray(30, 41).astype(np.uint16) * 257 + 37).astype(np.uint16)
    out = col.colorize(g16)
    assert out.dtype == np.uint16 and out.shape == (30, 41, 3)
    ref = rgb_to_l(np.repeat(g16[..., None], 3, -1) / 65535.0)
    assert np.abs(rgb_to_l(out / 65535.0) - ref).max() <= L_TOL_16BIT
    gf = _smooth_gray(30, 41).astype(np.float32) / 255.0
    out = col.colorize(gf)
    assert out.dtype == np.float32
    ref = rgb_to_l(np.repeat(gf[..., None], 3, -1).astype(np.float64))
    assert np.abs(rgb_to_l(out.astype(np.float64)) - ref).max() <= L_TOL_FLOAT


def test_alpha_kept(col):
    rng = np.random.default_rng(2)
    rgba = np.dstack([rng.integers(0, 256, (20, 30, 3)), rng.integers(0, 256, (20, 30))]).astype(np.uint8)
    out = col.colorize(rgba)
    assert out.shape == (20, 30, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    la = Image.fromarray(np.stack([rgba[..., 0], rgba[..., 3]], -1), "LA")
    out = col.colorize(la)
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[..., 3], rgba[..., 3])


@pytest.mark.parametrize("h, w", [(1, 1), (1, 17), (17, 1), (13, 17), (31, 97), (2, 300), (97, 61)])
def test_odd_sizes(col, h, w):
    g = _smooth_gray(h, w, seed=h + w)
    out = col.colorize(g)
    assert out.shape == (h, w, 3)
    assert np.abs(_l_of(out) - _l_of(np.repeat(g[..., None], 3, -1))).max() <= L_TOL_8BIT
    p = col.prepare(g)
    assert p.l.shape == (1, *p.key) and max(p.key) <= 32


@pytest.mark.parametrize("mode, out_mode", [("L", "RGB"), ("LA", "RGBA"), ("RGB", "RGB"), ("RGBA", "RGBA"),
                                            ("P", "RGB"), ("CMYK", "RGB"), ("1", "RGB"), ("I;16", "RGB"),
                                            ("I", "RGB"), ("F", "RGB")])
def test_pil_modes(col, mode, out_mode):
    g = _smooth_gray(24, 36)
    if mode == "I;16":
        im = Image.fromarray(g.astype(np.uint16) * 257)
    elif mode == "I":
        im = Image.fromarray(g.astype(np.int32) * 257)
    elif mode == "F":
        im = Image.fromarray(g.astype(np.float32) / 255)
    else:
        im = Image.fromarray(g).convert(mode)
    assert im.mode == mode
    out = col.colorize(im)
    assert isinstance(out, Image.Image) and out.mode == out_mode and out.size == (36, 24)
    # luminance of the output equals the luminance of the input as decoded
    src = np.asarray(im.convert("RGB")) if mode not in ("I;16", "I", "F") else np.repeat(g[..., None], 3, -1)
    assert np.abs(_l_of(np.asarray(out)[..., :3]) - _l_of(src)).max() <= L_TOL_8BIT + (0.5 if mode == "CMYK" else 0)


def test_path_input_is_decoded_with_exif(col, tmp_path):
    g = _smooth_gray(10, 16)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(g).save(tmp_path / "rot.png", exif=exif.tobytes())
    out = col.colorize(tmp_path / "rot.png")
    assert out.size == (10, 16)  # (w, h) after a 90-degree rotation


def test_colorize_equals_prepare_run_finish(col):
    for x in (_smooth_gray(50, 70), Image.fromarray(_smooth_gray(33, 20)).convert("RGBA")):
        p = col.prepare(x)
        manual = col.finish(p, col.engine.run(p.l[None])[0])
        np.testing.assert_array_equal(np.asarray(col.colorize(x)), np.asarray(manual))
    p1, p2 = col.prepare(_smooth_gray(64, 48)), col.prepare(_smooth_gray(128, 96, seed=3))
    assert p1.key == p2.key == (32, 24)  # same aspect -> same working shape -> one batch


def test_batch_equals_one_by_one(col):
    images = [_smooth_gray(64, 48, s) for s in range(3)] + [_smooth_gray(20, 20, 9), Image.fromarray(_smooth_gray(9, 5))]
    batch = col.colorize_batch(images, batch_size=2)
    for x, b in zip(images, batch):
        np.testing.assert_allclose(np.asarray(col.colorize(x)).astype(int), np.asarray(b).astype(int), atol=1)


def test_thread_safe(col):
    images = [_smooth_gray(40 + i, 50, i) for i in range(6)]
    serial = [col.colorize(x) for x in images]
    results = [None] * len(images)

    def work(i):
        results[i] = col.colorize(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for s, r in zip(serial, results):
        np.testing.assert_array_equal(s, r)


def test_merge_matches_lab_to_rgb_in_gamut_and_keeps_l_out_of_gamut():
    rng = np.random.default_rng(4)
    g = rng.integers(60, 200, (30, 40), dtype=np.uint8)
    ab = rng.uniform(-10, 10, (2, 30, 40)).astype(np.float32)  # small ab: in gamut for these L
    out = compose(g, ab, np.float64)
    ref = lab_to_rgb(np.stack([lightness(g), ab[0], ab[1]], -1).astype(np.float64))
    np.testing.assert_allclose(out, ref, atol=1e-5)  # float32 arithmetic
    np.testing.assert_allclose(rgb_to_lab(out)[..., 1:], np.moveaxis(ab, 0, -1), atol=2e-3)
    wild = rng.uniform(-250, 250, (2, 30, 40)).astype(np.float32)  # far out of gamut: plain clipping would move L
    g = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    for dt, tol, scale in ((np.uint8, L_TOL_8BIT, 255.0), (np.float32, L_TOL_FLOAT, 1.0)):
        out = compose(g, wild, dt)
        assert np.abs(rgb_to_l(out / scale) - lightness(g)).max() <= tol


def test_bad_inputs_are_clear(col):
    with pytest.raises(TypeError, match="path, a PIL image or a numpy array"):
        col.prepare([1, 2, 3])
    with pytest.raises(TypeError, match="dtype must be uint8, uint16, float32 or float64, got int64"):
        col.prepare(np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError, match=r"got shape \[4, 4, 2\]"):
        col.prepare(np.zeros((4, 4, 2), np.uint8))
    p = col.prepare(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"ab must have shape \[2, 4, 4\]"):
        col.finish(p, np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="working_size must be >= 1"):
        Colorizer(col.engine, working_size=0)


def test_colorizer_modules_do_not_import_torch():
    code = ("import sys, colorize.colorizer, colorize.image.io, colorize.image.merge, colorize.image.resize, "
            "colorize.job.report, colorize.cli.progress, colorize.cli.images; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("small, full", [((18, 32), (135, 240)), ((1, 1), (5, 7)), ((1, 5), (1, 17)), ((4, 96), (37, 1000))])
def test_row_upsampler_equals_pillow_bilinear_and_fused_merge(small, full):
    from colorize.image.resize import RowUpsampler, resize_plane

    ab = np.random.default_rng(5).uniform(-1, 1, (2, *small)).astype(np.float32)
    ref = np.stack([resize_plane(c, full) for c in ab])
    up = RowUpsampler(ab, full)
    got = np.concatenate([up.rows(r, min(full[0], r + 7)) for r in range(0, full[0], 7)], axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-5)  # float32 rounding only
    g = _smooth_gray(*full)
    fused = compose(g, ab, ab_scale=110.0)
    stored = compose(g, ref * np.float32(110.0))
    assert np.abs(fused.astype(int) - stored).max() <= 1  # float32 rounding can flip one 8-bit level


@pytest.mark.slow
def test_12_megapixel_photo(col):
    g = np.tile(_smooth_gray(300, 400), (10, 10))  # 3000 x 4000
    p = col.prepare(g)
    assert p.key == (24, 32)
    out = col.finish(p, col.engine.run(p.l[None])[0])
    assert out.shape == (3000, 4000, 3)
    rows = slice(1000, 1100)  # luminance check on a band (the full-size float64 reference is slow)
    assert np.abs(_l_of(out[rows]) - _l_of(np.repeat(g[rows, :, None], 3, -1))).max() <= L_TOL_8BIT


def test_min_working_size_enlarges_small_images_only():
    assert working_shape(32, 32, 256, 32, min_size=192) == (192, 192)
    assert working_shape(20, 40, 256, 32, min_size=192) == (96, 192)
    assert working_shape(300, 200, 256, 32, min_size=192) == (256, 160)  # large images: unchanged rule
    assert working_shape(200, 100, 256, 32, min_size=192) == (200, 100)  # already at least the minimum
    assert working_shape(32, 32, 64, 32, min_size=192) == (64, 64)  # never above the working size


def test_small_image_enlarged_for_the_model_output_at_its_size(col):
    g = _smooth_gray(30, 20)
    big = Colorizer(col.engine, working_size=128, min_working_size=96)  # shares col's engine: not closed here
    p = big.prepare(g)
    assert p.key == (96, 64)
    out = big.colorize(g)
    assert out.shape == (30, 20, 3)
    np.testing.assert_allclose(_l_of(out), _l_of(np.repeat(g[..., None], 3, -1)), atol=L_TOL_8BIT)
    assert col.min_working_size == 0  # resnet18-unet (CIFAR) has no minimum: 32x32 runs at 32x32
    with pytest.raises(ValueError, match="min_working_size must be >= 0"):
        Colorizer(col.engine, min_working_size=-1)


def test_colour_strength_scales_chroma_and_keeps_luminance(col):
    """strength s: a and b of the output are s times the model's (before gamut clipping), L* is the input's."""
    from colorize.colorizer import check_strength

    g = _smooth_gray(40, 56, seed=3)
    p = col.prepare(g)
    ab = col.run([p])[0]
    chroma = {}
    for s in (0.0, 1.0, 2.0):
        out = col.finish(p, ab, colour_strength=s)
        err = np.abs(_l_of(out) - _l_of(np.repeat(g[..., None], 3, -1)))
        assert err.max() <= L_TOL_8BIT
        chroma[s] = np.hypot(*rgb_to_lab(out.astype(np.float64) / 255.0)[..., 1:].transpose(2, 0, 1)).mean()
    assert chroma[0.0] < 0.5  # gray, up to 8-bit rounding
    assert chroma[1.0] > 0.5 and chroma[2.0] > 1.5 * chroma[1.0]
    np.testing.assert_array_equal(col.finish(p, ab, colour_strength=1.0), col.finish(p, ab))  # the default
    strong = Colorizer(col.engine, working_size=32, colour_strength=2.0)  # shares col's engine: not closed here
    np.testing.assert_array_equal(strong.colorize(g), col.finish(p, ab, colour_strength=2.0))
    for bad in (-0.1, 4.5, float("nan"), "strong"):
        with pytest.raises(ValueError, match="colour_strength"):
            check_strength(bad)

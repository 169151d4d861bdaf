"""Reading every Pillow mode, EXIF orientation, first frame, bad files, bomb limit, atomic writes."""

import numpy as np
import pytest
from PIL import Image

from colorize.image.io import (
    ImageReadError,
    format_for,
    from_pil,
    load_image,
    remove_stale_tmp,
    save_image,
)

RNG = np.random.default_rng(0)


def _gray(h=12, w=20):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _rgb(h=12, w=20):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_l_la_rgb_rgba_roundtrip_exactly(tmp_path):
    g, a, rgb = _gray(), _gray(), _rgb()
    cases = {
        "L": (Image.fromarray(g), g, None),
        "LA": (Image.fromarray(np.stack([g, a], -1), "LA"), g, a),
        "RGB": (Image.fromarray(rgb), rgb, None),
        "RGBA": (Image.fromarray(np.dstack([rgb, a])), rgb, a),
    }
    for mode, (im, pixels, alpha) in cases.items():
        assert im.mode == mode
        im.save(tmp_path / f"{mode}.png")
        d = load_image(tmp_path / f"{mode}.png")
        assert d.mode == mode and d.format == "PNG"
        np.testing.assert_array_equal(d.pixels, pixels)
        if alpha is None:
            assert d.alpha is None
        else:
            np.testing.assert_array_equal(d.alpha, alpha)


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=16)
    p.save(tmp_path / "p.png")
    d = load_image(tmp_path / "p.png")
    assert d.mode == "P" and d.alpha is None and d.pixels.shape == (12, 20, 3)
    np.testing.assert_array_equal(d.pixels, np.asarray(p.convert("RGB")))
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    d = load_image(tmp_path / "pt.png")
    idx = np.asarray(p)
    assert d.alpha is not None
    np.testing.assert_array_equal(d.alpha == 0, idx == 0)


def test_bilevel_cmyk_and_other_colour_modes(tmp_path):
    bw = Image.fromarray(_gray() > 127)
    assert bw.mode == "1"
    bw.save(tmp_path / "bw.png")
    d = load_image(tmp_path / "bw.png")
    assert d.pixels.dtype == np.uint8 and set(np.unique(d.pixels)) <= {0, 255}
    np.testing.assert_array_equal(d.pixels == 255, np.asarray(bw))
    cmyk = Image.fromarray(_rgb()).convert("CMYK")
    cmyk.save(tmp_path / "c.tif")
    d = load_image(tmp_path / "c.tif")
    assert d.mode == "CMYK" and d.pixels.shape == (12, 20, 3)
    np.testing.assert_array_equal(d.pixels, np.asarray(cmyk.convert("RGB")))
    for mode in ("YCbCr", "HSV"):
        d = from_pil(Image.fromarray(_rgb()).convert(mode))
        assert d.pixels.shape == (12, 20, 3) and d.pixels.dtype == np.uint8


def test_16_bit_gray_keeps_its_full_range(tmp_path):
    # Pillow's convert("L") clips I;16 values above 255; we must scale by 1/65535 instead.
    v = RNG.integers(0, 65536, (9, 11)).astype(np.uint16)
    v[0, 0], v[0, 1] = 0, 65535
    Image.fromarray(v).save(tmp_path / "g16.png")
    d = load_image(tmp_path / "g16.png")
    assert d.pixels.dtype == np.uint16
    np.testing.assert_array_equal(d.pixels, v)
    d = from_pil(Image.fromarray(v.astype(np.int32)))  # mode "I", as some 16-bit PNGs decode
    np.testing.assert_array_equal(d.pixels, v)
    f = RNG.random((5, 6), dtype=np.float32) * 1.4 - 0.2
    d = from_pil(Image.fromarray(f))  # mode "F": clipped to [0, 1]
    np.testing.assert_allclose(d.pixels, np.clip(f, 0, 1))


@pytest.mark.parametrize("orientation, op", [(3, Image.ROTATE_180), (6, Image.ROTATE_270), (8, Image.ROTATE_90)])
def test_exif_orientation_applied_and_removed(tmp_path, orientation, op):
    g = _gray(10, 16)
    im = Image.fromarray(g)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = "a description"
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    d = load_image(tmp_path / "o.png")
    np.testing.assert_array_equal(d.pixels, np.asarray(im.transpose(op)))
    kept = Image.Exif()
    kept.load(d.exif)
    assert 0x0112 not in kept and kept[0x010E] == "a description"


def test_multi_frame_gives_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (30, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    d = load_image(tmp_path / "anim.gif")
    assert d.n_frames == 2
    assert np.all(d.pixels == 30)


def test_bad_files_name_the_file_and_the_reason(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    expected = {"empty.png": "empty file", "text.png": "not an image", "cut.png": "truncated",
                "cut.jpg": "truncated", "missing.png": "cannot read"}
    for name, reason in expected.items():
        with pytest.raises(ImageReadError, match=reason) as e:
            load_image(tmp_path / name)
        assert name in str(e.value)


def test_decompression_bomb_limit(tmp_path):
    Image.fromarray(_gray(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="too large: 100x100"):
        load_image(tmp_path / "big.png", max_pixels=9_999)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).size == (100, 100)


def test_save_is_atomic_and_drops_alpha_only_where_needed(tmp_path, monkeypatch):
    rgba = Image.fromarray(np.dstack([_rgb(), _gray()]))
    save_image(rgba, tmp_path / "a.png")
    save_image(rgba, tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.png").mode == "RGBA" and Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]  # no temporary files left

    before = (tmp_path / "a.png").read_bytes()
    real_save = Image.Image.save

    def failing_save(self, fp, *a, **k):
        real_save(self, fp, *a, **k)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        save_image(Image.fromarray(_rgb()), tmp_path / "a.png")
    with pytest.raises(OSError, match="simulated"):
        save_image(Image.fromarray(_rgb()), tmp_path / "new.png")
    assert (tmp_path / "a.png").read_bytes() == before  # old output untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]


def test_remove_stale_tmp_only_for_named_outputs(tmp_path):
    (tmp_path / ".x.png.0123abcd.colorize-tmp").write_bytes(b"partial")
    (tmp_path / ".y.png.0123abcd.colorize-tmp").write_bytes(b"partial")
    assert remove_stale_tmp(tmp_path, {"x.png"}) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".y.png.0123abcd.colorize-tmp"]


def test_format_for():
    assert format_for("a/b.JPG") == "JPEG" and format_for("x.tif") == "TIFF"
    with pytest.raises(ValueError, match="unknown image extension '.xyz'"):
        format_for("a.xyz")


def test_gif_keeps_one_bit_transparency(tmp_path):
    alpha = np.zeros((12, 20), np.uint8)
    alpha[:, 10:] = 255
    save_image(Image.fromarray(np.dstack([_rgb(), alpha])), tmp_path / "t.gif")
    back = np.asarray(Image.open(tmp_path / "t.gif").convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] > 0, alpha > 127)

"""Between Y'CbCr planes and the model's gray and ab: levels, matrices, and the chroma of a known colour."""

import numpy as np
import pytest
from colorize.image.merge import compose
from colorize.video.chroma import chroma_from_ab, gray_table, matrix

pytest.importorskip("cv2")


def test_gray_table_stretches_limited_range_only():
    limited, full = gray_table(False), gray_table(True)
    assert limited[16] == 0 and limited[235] == 255 and limited[0] == 0 and limited[255] == 255
    assert limited[126] == round((126 - 16) * 255 / 219)
    assert np.array_equal(full, np.arange(256))


def test_untagged_streams_get_the_matrix_players_assume():
    assert matrix(2, 1080) == (0.2126, 0.0722) and matrix(2, 480) == (0.299, 0.114)
    assert matrix(1, 480) == (0.2126, 0.0722) and matrix(6, 1080) == (0.299, 0.114)


@pytest.mark.parametrize("kr_kb, full", [((0.299, 0.114), False), ((0.2126, 0.0722), False),
                                         ((0.2126, 0.0722), True)])
def test_chroma_is_the_merged_colour_in_the_streams_matrix(kr_kb, full):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (18, 32), dtype=np.uint8)
    ab = rng.normal(0, 0.3, (2, 9, 16)).astype(np.float32)
    u, v = chroma_from_ab(gray, ab, 110.0, kr_kb, full)
    rgb = compose(gray, ab, np.uint8, ab_scale=110.0).astype(np.float64)  # what colorize images writes
    kr, kb = kr_kb
    y = kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    span, lo, hi = (1.0, 0, 255) if full else (224 / 255, 16, 240)
    u_ref = np.clip(np.round((rgb[..., 2] - y) * span / (2 * (1 - kb)) + 128), lo, hi)
    v_ref = np.clip(np.round((rgb[..., 0] - y) * span / (2 * (1 - kr)) + 128), lo, hi)
    assert np.abs(u.astype(int) - u_ref).max() <= 1 and np.abs(v.astype(int) - v_ref).max() <= 1
    assert np.abs(u.astype(int) - 128).mean() > 3  # a real colour, not neutral


def test_no_colour_is_neutral_chroma():
    gray = np.linspace(0, 255, 64 * 8).astype(np.uint8).reshape(8, 64)
    u, v = chroma_from_ab(gray, np.zeros((2, 4, 32), np.float32), 110.0, (0.299, 0.114), False)
    assert np.abs(u.astype(int) - 128).max() <= 1 and np.abs(v.astype(int) - 128).max() <= 1

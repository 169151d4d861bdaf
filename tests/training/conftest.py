import numpy as np
import pytest
from PIL import Image


def smooth_photo(rng, h, w):
    """A smooth colour photo: two colour ramps, so ab is learnable and not constant."""
    y, x = np.mgrid[0:h, 0:w]
    r = 0.2 + 0.6 * x / max(w - 1, 1)
    g = 0.3 + 0.4 * y / max(h - 1, 1)
    b = np.full_like(r, rng.uniform(0.2, 0.8))
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def make_photo():
    """``smooth_photo`` for tests (a conftest function is not importable under --import-mode=importlib)."""
    return smooth_photo


@pytest.fixture(scope="module")
def small_photo_tree(tmp_path_factory):
    """Both photo splits (colorize.data.photos.SPLITS), three small PNG photos in each folder."""
    from colorize.data.photos import SPLITS

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split in SPLITS.values():
        for sub in split:
            (root / sub).mkdir(parents=True)
            for i, (h, w) in enumerate([(60, 90), (90, 60), (40, 40)]):
                Image.fromarray(smooth_photo(rng, h, w)).save(root / sub / f"{i}.png")
    return root

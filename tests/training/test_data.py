"""CIFAR-10 loader (on a small zip made here) and the image-folder dataset."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from colorize.data.cifar10 import load_cifar10, resolve_data_dir, sample_cifar10
from colorize.data.folder import ImageFolder, list_images


def _make_cifar(root, per_class=3):
    root.mkdir(parents=True, exist_ok=True)
    classes = ["cat", "dog"]
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        with zipfile.ZipFile(root / f"{split}.zip", "w") as zf:
            for c in classes:
                for i in range(per_class):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
                    zf.writestr(f"{split}/{c}/{i:04d}.png", buf.getvalue())
    return root


def test_cifar_loads_and_caches(tmp_path):
    root = _make_cifar(tmp_path / "cifar")
    x, y = load_cifar10("train", root)
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    x2, y2 = load_cifar10("train", root)  # from the cache
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_sample_decodes_the_images_a_full_load_would_pick(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path / "cache"))
    root = _make_cifar(tmp_path / "cifar", per_class=5)
    part = sample_cifar10("test", 4, seed=3, data_dir=root)  # nothing decoded yet: only these 4
    assert not (tmp_path / "cache" / "cifar10").exists()
    whole, _ = load_cifar10("test", root)
    want = whole[np.sort(np.random.default_rng(3).permutation(10)[:4])]
    np.testing.assert_array_equal(part, want)
    np.testing.assert_array_equal(sample_cifar10("test", 4, seed=3, data_dir=root), want)  # from the decoded cache


def test_cifar_env_var(tmp_path, monkeypatch):
    root = _make_cifar(tmp_path / "c2")
    monkeypatch.setenv("COLORIZE_CIFAR10", str(root))
    assert resolve_data_dir() == root
    assert load_cifar10("test")[0].shape[0] == 6


def test_cifar_missing_path_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cifar10("train", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_cifar10("valid", tmp_path)


def test_image_folder_recursive_skips_corrupt(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (5, 4), (10, 20, 30)).save(tmp_path / "a" / "x.png")
    Image.new("L", (3, 3), 100).save(tmp_path / "a" / "b" / "y.JPG", "JPEG")
    (tmp_path / "a" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    assert len(list_images(tmp_path)) == 3
    with pytest.warns(UserWarning, match="bad.png"):
        ds = ImageFolder(tmp_path)
    assert len(ds) == 2
    imgs = list(ds)
    assert sorted(i.shape for i in imgs) == [(3, 3, 3), (4, 5, 3)]
    assert all(i.dtype == np.uint8 for i in imgs)
    assert len(list_images(tmp_path / "a", recursive=False)) == 2


@pytest.mark.data
def test_real_cifar_counts():
    x, y = load_cifar10("test")
    assert x.shape == (10000, 32, 32, 3)
    assert np.bincount(y).tolist() == [1000] * 10

"""The ground layer's data: what the quality guard and INT8 calibration read at run time, shipped with the package
(``cifar10_test_guard.npz``, ``calibration/``), and the readers of the development datasets beside a clone
(``cifar10``: CIFAR-10's JPEG zips; ``photos``: the photo folders and their train/evaluate split).
Nothing here imports torch."""

"""MNIST for the Chainer example, in the shape of the v1 Gen B ``datautils.py``.

``download_mnist()`` returns ``(train, test)`` Chainer ``TupleDataset``s of (float32[784] in [0, 1],
int32 label), 60,000 and 10,000 examples, the same as ``chainer.datasets.get_mnist(ndim=1)``. The
four IDX gzip files are read locally, with their SHA-256 checked, from (first match wins):

1. ``data_folder`` (the training script's ``--data-folder``);
2. ``./data/mnist`` under the current directory (where Gen B's ``datautils`` put them);
3. ``$TRAINYARD_MNIST_DIR``, the trainyard source checkout's ``data/mnist``, then
   ``~/.trainyard/datasets/mnist`` (downloaded there once, from the public mirrors, if missing).

``images_from_request()`` turns a scoring request body into a batch of images (used by
``chainer_score.py``).
"""

import json
import os

import numpy as np

from trainyard._data.mnist import has_mnist_files, load_mnist, load_split


def find_data_folder(data_folder=None):
    """The folder to read MNIST from, or None to let trainyard search its usual places."""
    if data_folder:
        return data_folder
    local = os.path.join(os.getcwd(), "data", "mnist")
    if has_mnist_files(local):
        return local
    return None


def download_mnist(data_folder=None):
    """Return ``(train, test)`` as Chainer ``TupleDataset``s (float32 images / 255, int32 labels)."""
    from chainer.datasets import tuple_dataset

    (x_train, y_train), (x_test, y_test) = load_mnist(find_data_folder(data_folder), ndim=1)
    train = tuple_dataset.TupleDataset(x_train, y_train)
    test = tuple_dataset.TupleDataset(x_test, y_test)
    return train, test


def load_test_images(data_folder=None):
    """The 10,000 test images as float32 (10000, 784) in [0, 1] (what scoring indices refer to)."""
    x_test, _ = load_split("test", find_data_folder(data_folder), ndim=1)
    return x_test


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def images_from_request(raw_data, test_images):
    """Parse a scoring request into float32 images of shape (k, 784).

    The body is JSON ``{"data": ...}`` where ``data`` is either

    - test-set indices: an int or a list of ints (each in ``[0, len(test_images))``), or
    - pixels: one image (784 floats, or 28 lists of 28) or a list of images, values in [0, 1].

    A list made only of ints is read as indices, so send pixels as floats (``0.0``, not ``0``).
    Anything else raises ValueError with a message saying what was expected.
    """
    if isinstance(raw_data, bytes | bytearray):
        raw_data = raw_data.decode("utf-8")
    try:
        body = json.loads(raw_data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict) or "data" not in body:
        raise ValueError('request body must be a JSON object {"data": [...]}')
    data = body["data"]
    n_test = len(test_images)

    if _is_int(data):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError('"data" must be a non-empty list of test-set indices or of pixel values')

    if all(_is_int(item) for item in data):
        bad = [i for i in data if not 0 <= i < n_test]
        if bad:
            raise ValueError(f"test-set indices must be in [0, {n_test}); got {bad[:5]}")
        return np.asarray(test_images)[np.asarray(data, dtype=np.int64)].reshape(-1, 784)

    try:
        pixels = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            '"data" must be test-set indices (ints) or pixel arrays of numbers with a regular '
            "shape: 784, 28x28, k x 784 or k x 28 x 28"
        ) from None
    shape = pixels.shape
    if shape in ((784,), (28, 28)):
        pixels = pixels.reshape(1, 784)
    elif (len(shape) == 2 and shape[1] == 784) or (len(shape) == 3 and shape[1:] == (28, 28)):
        pixels = pixels.reshape(shape[0], 784)
    else:
        raise ValueError(
            f"pixel data has shape {shape}; expected 784, 28x28, k x 784 or k x 28 x 28 values"
        )
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise ValueError("pixel values must be finite and in [0, 1] (divide 0-255 values by 255)")
    return pixels.astype(np.float32)

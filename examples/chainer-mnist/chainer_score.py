"""Scoring script for the Chainer MNIST model (the v1 ``chainer_score.py`` contract, fixed).

``init()`` runs once per worker: it rebuilds the network, loads ``$AZUREML_MODEL_DIR/model.npz`` on the
CPU and loads the MNIST test set once from the local copy (the v1 script reloaded it from the
internet on every request).

``run(raw_data)`` takes the request body, ``{"data": ...}``:

- test-set indices, ``{"data": [7]}`` or ``{"data": [0, 1, 2]}`` (the v1 form; v1 accepted one only);
- pixels in [0, 1]: one image (784 floats or 28x28) or a list of them.

It returns the predicted digit for each input as a list, so one index gives ``[7]`` (sent as the
compact JSON ``[7]``). A malformed request raises ValueError, which the scoring server reports as
an error response.
"""

import os

import chainer
import chainer.functions as F
import chainer.links as L
import datautils
import numpy as np
from chainer import Chain, serializers

model = None
test_images = None


class MyNetwork(Chain):
    """Same network as in ``chainer_mnist.py`` (MLP 784 -> 100 -> 100 -> 10)."""

    def __init__(self, n_mid_units=100, n_out=10):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(None, n_mid_units)
            self.l2 = L.Linear(n_mid_units, n_mid_units)
            self.l3 = L.Linear(n_mid_units, n_out)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)


def init():
    global model, test_images
    model_root = os.getenv("AZUREML_MODEL_DIR") or os.getenv("TRAINYARD_MODEL_DIR")
    if not model_root:
        raise RuntimeError("AZUREML_MODEL_DIR is not set; it must name the folder with model.npz")
    network = MyNetwork()
    serializers.load_npz(os.path.join(model_root, "model.npz"), network)
    model = network
    test_images = datautils.load_test_images()


def run(raw_data):
    images = datautils.images_from_request(raw_data, test_images)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        scores = model(images)
    return [int(c) for c in np.argmax(scores.array, axis=1)]

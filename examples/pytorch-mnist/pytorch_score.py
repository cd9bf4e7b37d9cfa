"""Scoring script for the PyTorch MNIST model (same contract as the Chainer example's scorer).

``init()`` runs once per worker: it rebuilds the network, loads the ``state_dict`` from
``$AZUREML_MODEL_DIR/model.pt`` on the CPU and loads the MNIST test set once from the local copy.

``run(raw_data)`` takes the request body, ``{"data": ...}``:

- test-set indices, ``{"data": [7]}`` or ``{"data": [0, 1, 2]}``;
- pixels in [0, 1]: one image (784 floats or 28x28) or a list of them.

It returns the predicted digit for each input as a list, so one index gives ``[7]``. A malformed
request raises ValueError, which the scoring server reports as an error response.
"""

import os

import datautils
import torch
import torch.nn.functional as F
from torch import nn

model = None
test_images = None


class MyNetwork(nn.Module):
    """Same network as in ``pytorch_mnist.py`` (MLP 784 -> 100 -> 100 -> 10)."""

    def __init__(self, n_mid_units=100, n_out=10):
        super().__init__()
        self.l1 = nn.Linear(784, n_mid_units)
        self.l2 = nn.Linear(n_mid_units, n_mid_units)
        self.l3 = nn.Linear(n_mid_units, n_out)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)


def init():
    global model, test_images
    model_root = os.getenv("AZUREML_MODEL_DIR") or os.getenv("TRAINYARD_MODEL_DIR")
    if not model_root:
        raise RuntimeError("AZUREML_MODEL_DIR is not set; it must name the folder with model.pt")
    network = MyNetwork()
    state = torch.load(os.path.join(model_root, "model.pt"), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval()
    model = network
    test_images = datautils.load_test_images()


def run(raw_data):
    images = datautils.images_from_request(raw_data, test_images)
    with torch.no_grad():
        scores = model(torch.from_numpy(images))
    return [int(c) for c in scores.argmax(dim=1)]

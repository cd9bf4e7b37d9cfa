"""Train a 3-layer MLP on MNIST with PyTorch, with the interface of the v1 ``chainer_mnist.py`` sample.

Same arguments, network (784 -> 100 -> 100 -> 10, ReLU), optimizer (SGD, lr 0.01, momentum 0.9),
printed lines and metric names (``Batch size``, ``Epochs``, ``Accuracy``, ``Loss``) as the Chainer
example, so the same HyperDrive sweep and notebook cells work with either. The model is saved as a
``state_dict`` in ``<output_dir>/model.pt``. The script also runs outside trainyard, where
``Run.get_context()`` is offline.

Run it::

    python pytorch_mnist.py --epochs 10 --batchsize 128 --output_dir ./outputs
    python pytorch_mnist.py -e 1 --train-slice 2000 --test-slice 500      # a quick check
"""

import argparse
import os

import datautils
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainyard.core.run import Run

run = Run.get_context()


class MyNetwork(nn.Module):
    """MLP 784 -> 100 -> 100 -> 10 with ReLU (the v1 sample's network)."""

    def __init__(self, n_mid_units=100, n_out=10):
        super().__init__()
        self.l1 = nn.Linear(784, n_mid_units)
        self.l2 = nn.Linear(n_mid_units, n_mid_units)
        self.l3 = nn.Linear(n_mid_units, n_out)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)


def _tensors(dataset, n):
    x, y = dataset.tensors
    if n is not None and 0 < n < len(x):
        x, y = x[:n], y[:n]
    return x, y


def _device(gpu_id):
    """CPU for -1; cuda:0 when a GPU was asked for and one is available (GPU 0, as the v1 sample)."""
    if gpu_id < 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    print(f"--gpu_id {gpu_id} asked for a GPU but CUDA is not available; training on CPU")
    return torch.device("cpu")


def main():
    parser = argparse.ArgumentParser(description="PyTorch example: MNIST")
    parser.add_argument(
        "--batchsize", "-b", type=int, default=100, help="Number of images in each mini-batch"
    )
    parser.add_argument(
        "--epochs", "-e", type=int, default=20, help="Number of sweeps over the dataset to train"
    )
    parser.add_argument(
        "--output_dir", "-o", default="./outputs", help="Directory to output the result"
    )
    parser.add_argument(
        "--gpu_id", "-g", type=int, default=-1, help="ID of the GPU to be used; -1 (default) is CPU"
    )
    parser.add_argument(
        "--data-folder",
        default=None,
        help="Folder with the four MNIST IDX gzip files (default: ./data/mnist, else trainyard's copy)",
    )
    parser.add_argument(
        "--train-slice", type=int, default=None, help="Use only the first N training examples"
    )
    parser.add_argument(
        "--test-slice", type=int, default=None, help="Use only the first N test examples"
    )
    args = parser.parse_args()

    train, test = datautils.download_mnist(args.data_folder)
    device = _device(args.gpu_id)
    x_train, y_train = (t.to(device) for t in _tensors(train, args.train_slice))
    x_test, y_test = (t.to(device) for t in _tensors(test, args.test_slice))

    batchsize = args.batchsize
    epochs = args.epochs
    run.log("Batch size", int(batchsize))
    run.log("Epochs", int(epochs))

    model = MyNetwork().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    n_train = len(x_train)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n_train, device=device)
        for start in range(0, n_train, batchsize):
            idx = order[start : start + batchsize]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        # train_loss is the last minibatch's loss, as in the v1 sample.
        print(f"epoch:{epoch:02d} train_loss:{loss.item():.04f} ", end="")

        test_losses = []
        test_accuracies = []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(x_test), batchsize):
                xb, tb = x_test[start : start + batchsize], y_test[start : start + batchsize]
                prediction = model(xb)
                test_losses.append(F.cross_entropy(prediction, tb).item())
                test_accuracies.append((prediction.argmax(dim=1) == tb).float().mean().item())

        # Unweighted means of the per-batch values, as the Chainer sample computes them.
        val_loss = np.mean(test_losses)
        val_accuracy = np.mean(test_accuracies)
        print(f"val_loss:{val_loss:.04f} val_accuracy:{val_accuracy:.04f}", flush=True)

        run.log("Accuracy", float(val_accuracy))
        run.log("Loss", float(val_loss))

    os.makedirs(args.output_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.output_dir, "model.pt"))


if __name__ == "__main__":
    main()

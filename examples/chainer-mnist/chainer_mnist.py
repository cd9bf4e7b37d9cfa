"""Train a 3-layer MLP on MNIST with Chainer: the Azure ML v1 ``chainer_mnist.py`` sample on trainyard.

Same arguments, model, optimizer, loop, printed lines and metric names as the v1 sample, with its
known problems fixed (the script also runs outside trainyard, where ``Run.get_context()`` is offline):

- ``--gpu_id`` is an int, default -1 (CPU); GPU 0 is used only when asked for and CuPy is present;
- metrics are logged with ``int()``/``float()`` (``np.int``/``np.float`` are gone from NumPy >= 1.24);
- MNIST is read from a local copy (``datautils.py``), not downloaded on every run;
- ``--output_dir`` is created if missing.

Run it::

    python chainer_mnist.py --epochs 10 --batchsize 128 --output_dir ./outputs
    python chainer_mnist.py -e 1 --train-slice 2000 --test-slice 500      # a quick check
"""

import argparse
import os
import time

import chainer
import chainer.functions as F
import chainer.links as L
import datautils
import numpy as np
from chainer import Chain, iterators, optimizers, serializers
from chainer.backends.cuda import to_cpu
from chainer.dataset import concat_examples
from chainer.datasets import SubDataset

from trainyard.core.run import Run

run = Run.get_context()


class MyNetwork(Chain):
    """MLP 784 -> 100 -> 100 -> 10 with ReLU (the v1 sample's network; not a CNN)."""

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


def _subset(dataset, n):
    if n is None or n <= 0 or n >= len(dataset):
        return dataset
    return SubDataset(dataset, 0, n)


def _device(gpu_id):
    """-1 for CPU; 0 when a GPU was asked for and CuPy can use one (GPU 0, as the v1 sample)."""
    if gpu_id < 0:
        return -1
    if chainer.backends.cuda.available:
        return 0
    print(f"--gpu_id {gpu_id} asked for a GPU but CuPy/CUDA is not available; training on CPU")
    return -1


def main():
    parser = argparse.ArgumentParser(description="Chainer example: MNIST")
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
        "--lr", type=float, default=0.01, help="MomentumSGD learning rate (the v1 sample's 0.01)"
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
    parser.add_argument(
        "--print-timing",
        action="store_true",
        help="After each epoch print epoch_time:<s> cpu_time:<s>, the wall and CPU seconds of its "
        "training loop (evaluation excluded)",
    )
    args = parser.parse_args()

    train, test = datautils.download_mnist(args.data_folder)
    train = _subset(train, args.train_slice)
    test = _subset(test, args.test_slice)

    gpu_id = _device(args.gpu_id)
    batchsize = args.batchsize
    epochs = args.epochs
    run.log("Batch size", int(batchsize))
    run.log("Epochs", int(epochs))

    train_iter = iterators.SerialIterator(train, batchsize)
    test_iter = iterators.SerialIterator(test, batchsize, repeat=False, shuffle=False)

    model = MyNetwork()
    if gpu_id >= 0:
        chainer.backends.cuda.get_device_from_id(0).use()
        model.to_gpu()

    optimizer = optimizers.MomentumSGD(lr=args.lr, momentum=0.9)
    optimizer.setup(model)

    device = gpu_id if gpu_id >= 0 else None
    epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
    while train_iter.epoch < epochs:
        train_batch = train_iter.next()
        image_train, target_train = concat_examples(train_batch, device)
        prediction_train = model(image_train)
        loss = F.softmax_cross_entropy(prediction_train, target_train)
        model.cleargrads()
        loss.backward()
        optimizer.update()

        if train_iter.is_new_epoch:
            train_seconds = time.perf_counter() - epoch_start
            train_cpu = time.process_time() - epoch_cpu
            # train_loss is the last minibatch's loss, as in the v1 sample.
            print(
                f"epoch:{train_iter.epoch:02d} train_loss:{float(to_cpu(loss.array)):.04f} ",
                end="",
            )

            test_losses = []
            test_accuracies = []
            with chainer.using_config("train", False), chainer.no_backprop_mode():
                for test_batch in test_iter:
                    image_test, target_test = concat_examples(test_batch, device)
                    prediction_test = model(image_test)
                    loss_test = F.softmax_cross_entropy(prediction_test, target_test)
                    test_losses.append(to_cpu(loss_test.array))
                    accuracy = F.accuracy(prediction_test, target_test)
                    accuracy.to_cpu()
                    test_accuracies.append(accuracy.array)
            test_iter.reset()

            # Unweighted means of the per-batch values (v1 quirk 7: kept on purpose).
            val_loss = np.mean(test_losses)
            val_accuracy = np.mean(test_accuracies)
            print(f"val_loss:{val_loss:.04f} val_accuracy:{val_accuracy:.04f}", flush=True)

            run.log("Accuracy", float(val_accuracy))
            run.log("Loss", float(val_loss))
            if args.print_timing:
                print(f"epoch_time:{train_seconds:.6f} cpu_time:{train_cpu:.6f}", flush=True)
            epoch_start, epoch_cpu = time.perf_counter(), time.process_time()

    os.makedirs(args.output_dir, exist_ok=True)
    serializers.save_npz(os.path.join(args.output_dir, "model.npz"), model)


if __name__ == "__main__":
    main()

"""Train an MLP on MNIST with ChainerMN over MPI: the v1 distributed sample (``train_mnist.py``) on
trainyard, on CPU.

Submit it with ``distributed_job_config=MpiConfiguration(process_count_per_node=N)`` (or the
``Chainer`` estimator's ``distributed_training=Mpi(N)``); trainyard starts N ranks with ``mpirun``
and adds ``mpi4py`` to the environment. It also runs by hand::

    mpirun -np 2 python train_mnist.py --epoch 1 --train-slice 6000

As the v1 sample: rank 0 reads MNIST and ``scatter_dataset`` hands each rank its share; a
multi-node optimizer all-reduces the gradients; the evaluator averages over ranks; only rank 0
prints the report. Differences: the communicator defaults to ``naive`` (CPU; ``flat`` also
works), ``--gpu`` is off unless given, MNIST comes from the local copy (``trainyard._data.mnist``),
and metrics are logged to the run: every rank logs ``rank_images`` (the examples it trained on),
rank 0 logs ``loss``, ``accuracy`` and ``images_per_sec`` each epoch.
"""

import argparse
import os
import time

import chainer
import chainer.functions as F
import chainer.links as L
import chainermn
import numpy as np
from chainer import iterators
from chainer.dataset import concat_examples

from trainyard.core.run import Run


class MLP(chainer.Chain):
    """784 → n_units → n_units → 10 with ReLU (the sample's network)."""

    def __init__(self, n_units, n_out=10):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(None, n_units)
            self.l2 = L.Linear(None, n_units)
            self.l3 = L.Linear(None, n_out)

    def forward(self, x):
        h1 = F.relu(self.l1(x))
        h2 = F.relu(self.l2(h1))
        return self.l3(h2)


def load(train_slice, test_slice):
    from chainer.datasets import TupleDataset

    from trainyard._data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(ndim=1)
    if train_slice:
        x_train, y_train = x_train[:train_slice], y_train[:train_slice]
    if test_slice:
        x_test, y_test = x_test[:test_slice], y_test[:test_slice]
    return TupleDataset(x_train, y_train), TupleDataset(x_test, y_test)


def main():
    parser = argparse.ArgumentParser(description="ChainerMN example: MNIST")
    parser.add_argument("--batchsize", "-b", type=int, default=100)
    parser.add_argument("--communicator", default="naive")
    parser.add_argument("--epoch", "-e", type=int, default=20)
    parser.add_argument("--gpu", "-g", action="store_true", help="use GPUs (CuPy)")
    parser.add_argument("--out", "-o", default="result")
    parser.add_argument("--unit", "-u", type=int, default=1000)
    parser.add_argument("--train-slice", type=int, default=0, help="first N training examples")
    parser.add_argument("--test-slice", type=int, default=0, help="first N test examples")
    args = parser.parse_args()

    comm = chainermn.create_communicator(args.communicator)
    device = comm.intra_rank if args.gpu else -1
    run = Run.get_context()
    if comm.rank == 0:
        print(f"Num process (COMM_WORLD): {comm.size}")
        print(f"Using {args.communicator} communicator")
        print(f"Num unit: {args.unit}")
        print(f"Num Minibatch-size: {args.batchsize}")
        print(f"Num epoch: {args.epoch}")

    model = L.Classifier(MLP(args.unit))
    if device >= 0:
        chainer.cuda.get_device_from_id(device).use()
        model.to_gpu()
    optimizer = chainermn.create_multi_node_optimizer(chainer.optimizers.Adam(), comm)
    optimizer.setup(model)

    train, test = load(args.train_slice, args.test_slice) if comm.rank == 0 else (None, None)
    train = chainermn.scatter_dataset(train, comm, shuffle=True)
    test = chainermn.scatter_dataset(test, comm, shuffle=True)
    total_train = comm.allreduce_obj(len(train))

    for epoch in range(1, args.epoch + 1):
        comm.mpi_comm.Barrier()
        started = time.perf_counter()
        it = iterators.SerialIterator(train, args.batchsize, repeat=False, shuffle=True)
        for batch in it:
            x, t = concat_examples(batch, device)
            optimizer.update(model, x, t)
        comm.mpi_comm.Barrier()
        seconds = time.perf_counter() - started
        loss_sum, correct, seen = 0.0, 0.0, 0
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            for batch in iterators.SerialIterator(test, 500, repeat=False, shuffle=False):
                x, t = concat_examples(batch, device)
                y = model.predictor(x)
                loss_sum += float(F.softmax_cross_entropy(y, t).array) * len(t)
                correct += float((y.array.argmax(axis=1) == t).sum())
                seen += len(t)
        loss_sum = comm.allreduce_obj(loss_sum)
        correct = comm.allreduce_obj(correct)
        seen = comm.allreduce_obj(seen)
        run.log("rank_images", len(train))
        if comm.rank == 0:
            rate = total_train / seconds
            print(
                f"epoch {epoch}: validation/main/loss {loss_sum / seen:.4f} "
                f"validation/main/accuracy {correct / seen:.4f} ({rate:.0f} images/s)"
            )
            run.log("loss", loss_sum / seen)
            run.log("accuracy", correct / seen)
            run.log("images_per_sec", rate)
            print(f"IMAGES_PER_SEC={rate:.1f}", flush=True)
    if comm.rank == 0:
        os.makedirs("outputs", exist_ok=True)
        np.save("outputs/last_accuracy.npy", np.array([correct / seen]))


if __name__ == "__main__":
    main()

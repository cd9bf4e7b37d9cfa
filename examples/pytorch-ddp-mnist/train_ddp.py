"""Train a small CNN on MNIST with PyTorch DistributedDataParallel (gloo on CPU).

Submit it with ``distributed_job_config=PyTorchConfiguration(communication_backend="Gloo",
process_count=N)`` (or the ``PyTorch`` estimator's ``distributed_training=Gloo()`` with
``process_count_per_node=N``): trainyard starts N processes with ``MASTER_ADDR``, ``MASTER_PORT``,
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` … set as ``torchrun`` sets them. It also runs by hand::

    torchrun --nproc-per-node 2 train_ddp.py --epochs 1 --train-slice 6000

Each rank first checks the process group with an ``all_reduce`` (the sum of ``rank + 1`` over
the world, logged as ``allreduce_sum``), then trains on its share of the examples; rank 0 logs
``loss``, ``accuracy`` and ``images_per_sec`` each epoch and saves ``outputs/model.pt``.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from trainyard.core.run import Run


class Net(nn.Module):
    """Two 3×3 convolutions (16, 32 channels) with max-pooling, then two linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def load(train_slice, test_slice):
    from trainyard._data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(ndim=3)
    if train_slice:
        x_train, y_train = x_train[:train_slice], y_train[:train_slice]
    if test_slice:
        x_test, y_test = x_test[:test_slice], y_test[:test_slice]
    as_tensor = torch.from_numpy
    return (as_tensor(x_train), as_tensor(y_train).long()), (
        as_tensor(x_test),
        as_tensor(y_test).long(),
    )


def main():
    parser = argparse.ArgumentParser(description="PyTorch DDP example: MNIST")
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batchsize", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--train-slice", type=int, default=0)
    parser.add_argument("--test-slice", type=int, default=0)
    args = parser.parse_args()

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    run = Run.get_context()
    check = torch.tensor([float(rank + 1)])
    dist.all_reduce(check)
    expected = world * (world + 1) / 2
    print(
        f"rank {rank}/{world} local_rank {os.environ.get('LOCAL_RANK')}: all_reduce {check.item()}"
    )
    assert check.item() == expected, (check.item(), expected)
    run.log("allreduce_sum", check.item())

    torch.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load(args.train_slice, args.test_slice)
    x_train, y_train = x_train[rank::world], y_train[rank::world]  # this rank's share
    model = nn.parallel.DistributedDataParallel(Net())
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    n_local = torch.tensor([len(x_train)])
    dist.all_reduce(n_local)
    for epoch in range(1, args.epochs + 1):
        dist.barrier()
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), args.batchsize):
            idx = order[i : i + args.batchsize]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        dist.barrier()
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            out = model.module(x_test)
            test_loss = F.cross_entropy(out, y_test).item()
            accuracy = (out.argmax(1) == y_test).float().mean().item()
        if rank == 0:
            rate = n_local.item() / seconds
            print(
                f"epoch {epoch}: loss {test_loss:.4f} accuracy {accuracy:.4f} ({rate:.0f} images/s)"
            )
            run.log("loss", test_loss)
            run.log("accuracy", accuracy)
            run.log("images_per_sec", rate)
            print(f"IMAGES_PER_SEC={rate:.1f}", flush=True)
    if rank == 0:
        os.makedirs("outputs", exist_ok=True)
        torch.save(model.module.state_dict(), "outputs/model.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

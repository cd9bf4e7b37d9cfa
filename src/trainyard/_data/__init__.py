"""Datasets trainyard ships or knows how to fetch and verify (internal).

Each module owns one dataset: where its files are looked for, their checksums, a reader and, where the
original was downloaded from the internet, a verified fetch from public mirrors. Public, v1-shaped
access goes through :mod:`trainyard.opendatasets`.

Example::

    from trainyard._data.mnist import load_mnist
    (x_train, y_train), (x_test, y_test) = load_mnist()
"""

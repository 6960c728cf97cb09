"""The same networks trained by a plain PyTorch loop on the same machine: the peer figures.

LeNet5 (the starter's layers) and the BasicRNN/LSTM/GRU row classifiers, Adam at our default learning
rates, batches drawn from a fresh permutation every epoch, in float32 and under bfloat16 autocast.
Threads are pinned to the CPU count TensorFlow uses, and denormals flushed as TensorFlow's CPU
kernels do (without it PyTorch's LSTM swings several-fold on a loaded machine). PyTorch is optional
(``pip install -e ".[bench]"``); without it the rows say so.
"""

import importlib.util
import os
import time

PRECISIONS = ("float32", "bfloat16")


def installed():
    return importlib.util.find_spec("torch") is not None


def _lenet5(torch, num_classes):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, num_classes))


def _row_classifier(torch, cell, units, num_classes):
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]

    class RowClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.recurrent, self.logits = layer(28, units, batch_first=True), torch.nn.Linear(units, num_classes)

        def forward(self, rows):
            out, _ = self.recurrent(rows)
            return self.logits(out[:, -1])

    return RowClassifier()


def rates(network, x, y, batch_size, epochs, precision="float32", lr=1e-3, units=128, threads=None, seed=0):
    """Images/s of each epoch of PyTorch training ``network`` ("lenet5" or a cell) on uint8 images ``x``."""
    import torch

    torch.set_num_threads(threads or os.cpu_count())
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    images = torch.from_numpy(x).float().div_(255.0)
    images = images.permute(0, 3, 1, 2).contiguous() if network == "lenet5" else images.reshape(len(x), 28, 28)
    labels = torch.from_numpy(y.astype("int64"))
    net = _lenet5(torch, 10) if network == "lenet5" else _row_classifier(torch, network, units, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = len(y) // batch_size
    out = []
    for _ in range(epochs):
        order = torch.randperm(len(y))
        started = time.perf_counter()
        for step in range(steps):
            batch = order[step * batch_size:(step + 1) * batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                loss = loss_fn(net(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        out.append(steps * batch_size / (time.perf_counter() - started))
    return out

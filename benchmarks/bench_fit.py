"""fit() against a minimal hand-written PyTorch loop: same model, data, batch size, epochs.

Target: fit costs at most 1.10x the hand-written loop. Both runs use the same seeds and
in-memory tensors; the hand-written loop is what a student would write in a notebook
(shuffled index slices, Adam, cross-entropy), without validation, progress bar or history.

    python benchmarks/bench_fit.py
"""

import time

import torch
from torch import nn

from deepimaging.data import simulate_blood_smear
from deepimaging.models import BasicCNN
from deepimaging.train import fit, seed_everything

EPOCHS, BATCH, REPEATS = 3, 64, 3


def hand_written_loop(model, images, labels):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def timed(run):
    seed_everything(0)
    model = BasicCNN(3, 4)
    start = time.perf_counter()
    run(model)
    return time.perf_counter() - start


def main():
    data = simulate_blood_smear(n_per_class=300, size=32, seed=0)
    hand, ours = [], []
    for _ in range(REPEATS):  # interleave so drift in machine load hits both alike
        hand.append(timed(lambda m: hand_written_loop(m, data.images, data.labels)))
        ours.append(
            timed(lambda m: fit(m, data, epochs=EPOCHS, batch_size=BATCH, device="cpu", progress=False))
        )
    h, o = min(hand), min(ours)
    print(f"hand-written loop: {h:.3f} s  (best of {REPEATS}; {len(data)} images x {EPOCHS} epochs)")
    print(f"deepimaging.fit:   {o:.3f} s")
    print(f"fit: {o / h:.3f}x hand-written loop (target <= 1.10x)")


if __name__ == "__main__":
    main()

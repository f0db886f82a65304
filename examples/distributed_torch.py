"""Data parallelism with `torch.distributed` (DDP) on PyTorch.

On the torch backend a Keras model is a `torch.nn.Module`, so PyTorch's own
`DistributedDataParallel` wraps it: each process holds a replica, trains on
its slice of every batch, and DDP averages the gradients. Keras' `fit` does
not drive DDP, so the training loop is PyTorch's (a torch optimizer and
loss). Launch one process per device with `torchrun`:

    torchrun --standalone --nproc_per_node=2 examples/distributed_torch.py

Without GPUs the processes run on the CPU and talk over the `gloo` backend;
with GPUs, each process takes the GPU of its `LOCAL_RANK` and `nccl`. Rank 0
also trains the same model (same weights, same batches) on its own, then
prints one JSON line: both loss curves and the largest difference between
the two trained models' weights. The script forces the torch backend.
"""

import argparse
import json
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402

import keras_masknet  # noqa: E402
from keras_masknet.datasets import make_click_data  # noqa: E402


def build_model(num_features: int) -> keras.Model:
    """A click model: features -> MaskNet -> Dense(1, sigmoid)."""
    inputs = keras.Input(shape=(num_features,), name="features")
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 32, "aggregation_size": 64},
            {"output_size": 32, "aggregation_size": 64},
        ],
        # No BatchNorm: each process would normalize its own slice of the
        # batch (torch.nn.SyncBatchNorm is not a Keras layer).
        mlp={"layer_sizes": [32, 16]},
        use_parallel=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    return keras.Model(inputs, outputs)


# --8<-- [start:train]
def train(
    model: torch.nn.Module,
    loader: DataLoader,
    epochs: int,
    world_size: int,
) -> list[float]:
    """A PyTorch training loop; returns the mean loss of each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCELoss()
    curve = []
    for epoch in range(epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        total, batches = 0.0, 0
        for x, y in loader:
            loss = loss_fn(model(x, training=True), y)
            optimizer.zero_grad()
            loss.backward()  # DDP all-reduces the gradients here
            optimizer.step()
            loss = loss.detach()
            if world_size > 1:  # the global batch's loss, for the log
                dist.all_reduce(loss)
                loss /= world_size
            total += float(loss)
            batches += 1
        curve.append(total / batches)
    return curve


# --8<-- [end:train]


# --8<-- [start:setup]
def init_process_group() -> torch.device:
    """Join the process group that torchrun launched; return the device."""
    # torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
    if torch.cuda.is_available():
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)  # Keras creates weights there
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device("cpu")


# --8<-- [end:setup]


# --8<-- [start:ddp]
def fit_ddp(
    model: keras.Model, dataset: TensorDataset, batch_size: int, epochs: int
) -> list[float]:
    """Train `model` in place with DDP; `batch_size` is the global batch."""
    world_size = dist.get_world_size()
    # Each process takes every world_size-th sample: together, the
    # processes' k-th batches make up the k-th global batch.
    sampler = DistributedSampler(dataset, shuffle=False)
    loader = DataLoader(
        dataset, batch_size=batch_size // world_size, sampler=sampler
    )
    # DDP copies rank 0's weights to every process, then syncs gradients.
    ddp_model = DistributedDataParallel(model)
    return train(ddp_model, loader, epochs, world_size)


# --8<-- [end:ddp]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument(
        "--batch-size", type=int, default=256, help="the global batch size"
    )
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    device = init_process_group()
    data = make_click_data(num_samples=args.samples, seed=0)
    dataset = TensorDataset(
        torch.from_numpy(data.x).to(device), torch.from_numpy(data.y).to(device)
    )
    keras.utils.set_random_seed(0)
    model = build_model(data.x.shape[1])
    initial_weights = model.get_weights()
    ddp_curve = fit_ddp(model, dataset, args.batch_size, args.epochs)

    if dist.get_rank() == 0:
        # `model` (not the DDP wrapper) is the trained Keras model: save it
        # from rank 0 only. Here, rank 0 also trains a copy on its own.
        reference = build_model(data.x.shape[1])
        reference.set_weights(initial_weights)
        single_loader = DataLoader(dataset, batch_size=args.batch_size)
        single_curve = train(reference, single_loader, args.epochs, 1)
        weight_diff = max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(model.get_weights(), reference.get_weights())
        )
        print(
            json.dumps(
                {
                    "backend": keras.backend.backend(),
                    "world_size": dist.get_world_size(),
                    "process_group_backend": dist.get_backend(),
                    "ddp_loss": ddp_curve,
                    "single_process_loss": single_curve,
                    "weight_max_abs_diff": weight_diff,
                }
            )
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

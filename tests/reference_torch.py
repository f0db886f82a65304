"""A PyTorch re-implementation of the reference MaskNet, for tests only.

Written from `shared/REFERENCE.md` alone (no code of the reference is copied):
the same module structure, so `state_dict()` keys are the reference's, and
the same numerics (Xavier-uniform kernels, zero biases, LayerNorm and
BatchNorm1d with PyTorch defaults). The reference's defects are NOT copied:
a serial MaskNet with an MLP runs its blocks in series and then the MLP.
The benchmarks use it as "the reference" contender too.
"""

from typing import Any

import torch
from torch import nn


def _linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TorchMaskBlock(nn.Module):
    def __init__(self, config: dict, input_dim: int, mask_input_dim: int):
        super().__init__()
        if config.get("input_layer_norm"):
            self._input_layer_norm = nn.LayerNorm(input_dim)
        else:
            self._input_layer_norm = None
        if config.get("reduction_factor") is not None:
            aggregation = int(mask_input_dim * config["reduction_factor"])
        elif config.get("aggregation_size") is not None:
            aggregation = config["aggregation_size"]
        else:
            raise ValueError(
                "Need one of reduction factor or aggregation size."
            )
        self._mask_layer = nn.Sequential(
            _linear(mask_input_dim, aggregation),
            nn.ReLU(),
            _linear(aggregation, input_dim),
        )
        self._hidden_layer = _linear(input_dim, config["output_size"])
        self._layer_norm = nn.LayerNorm(config["output_size"])

    def forward(self, net: torch.Tensor, mask_input: torch.Tensor) -> Any:
        if self._input_layer_norm is not None:
            net = self._input_layer_norm(net)
        masked = net * self._mask_layer(mask_input)
        return self._layer_norm(self._hidden_layer(masked))


class TorchMLP(nn.Module):
    def __init__(self, in_features: int, config: dict):
        super().__init__()
        sizes = config["layer_sizes"]
        batch_norm = config.get("batch_norm")
        dropout = config.get("dropout")
        modules: list[nn.Module] = []
        width = in_features
        for size in sizes[:-1]:
            modules.append(_linear(width, size))
            if batch_norm is not None:
                modules.append(
                    nn.BatchNorm1d(
                        size,
                        affine=batch_norm.get("affine", True)
                        if batch_norm.get("affine") is not None
                        else True,
                        momentum=batch_norm.get("momentum") or 0.1,
                    )
                )
            modules.append(nn.ReLU())
            if dropout is not None:
                modules.append(nn.Dropout(dropout.get("rate") or 0.1))
            width = size
        modules.append(_linear(width, sizes[-1]))
        if config.get("final_layer_activation"):
            modules.append(nn.ReLU())
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TorchMaskNet(nn.Module):
    def __init__(self, config: dict, in_features: int):
        super().__init__()
        self.use_parallel = bool(config.get("use_parallel"))
        blocks = []
        width = in_features
        for block_config in config["mask_blocks"]:
            input_dim = in_features if self.use_parallel else width
            blocks.append(TorchMaskBlock(block_config, input_dim, in_features))
            width = block_config["output_size"]
        self._mask_blocks = nn.ModuleList(blocks)
        if self.use_parallel:
            width = sum(b["output_size"] for b in config["mask_blocks"])
        if config.get("mlp") is not None:
            self._dense_layers = TorchMLP(width, config["mlp"])
        else:
            self._dense_layers = None

    def forward(self, inputs: torch.Tensor) -> dict:
        if self.use_parallel:
            net = torch.cat([b(inputs, inputs) for b in self._mask_blocks], -1)
        else:
            net = inputs
            for block in self._mask_blocks:
                net = block(net, inputs)
        output = net if self._dense_layers is None else self._dense_layers(net)
        return {"output": output, "shared_layer": net}


def randomize_(module: nn.Module, seed: int) -> None:
    """Randomize EVERY parameter and floating buffer of `module` in place.

    LayerNorm and BatchNorm scales, offsets and running statistics included,
    so a transposed or swapped weight cannot pass a parity test.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator) * 0.5
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith(".weight") and tensor.ndim == 1:
                values = values + 1.0
            tensor.copy_(values)

"""Mixed-adapter batches in one pass per layer: every row of a batch through its own LoRA adapter.

peft's mixed batches (`adapter_names`) loop over the batch's adapters in every adapted layer,
gathering that adapter's rows, running its two small matmuls and scattering the result back: a
batch that meets twelve adapters makes twelve gathers, 24 matmuls and twelve scatters per layer.
Here each adapted layer runs its frozen base once and adds every row's delta in two batched matmuls
(`x @ A_row^T @ B_row^T`, with each row's A and B gathered from the batch's adapters, scaling folded
into B, added in place): the arithmetic of one adapter whatever the mix, as in Punica's and
S-LoRA's batched kernels for language models. A batch of one adapter takes two plain matmuls per
layer; either way no peft state is switched per batch (peft's `set_adapter` walks every layer and
adapter, a cost that grows with the adapters loaded).

Plain LoRA on linear layers only (what `retrieval-ft train` writes); `supports` tells whether a
peft model qualifies, and serve/adapters.py keeps peft's own mixed batches for anything else (LoRA
variants such as DoRA, biases on B, embedding or convolution adapters). Knows torch and peft's LoRA
layers; nothing of models' files or of HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

BASE = "__base__"  # a row that takes no adapter (peft's own name for it)


def lora_layers(peft_model: Any) -> list[Any]:
    """The LoRA layers of a peft model, in module order."""
    from peft.tuners.lora.layer import LoraLayer

    return [m for m in peft_model.modules() if isinstance(m, LoraLayer)]


def supports(peft_model: Any) -> bool:
    """Whether every LoRA layer is plain LoRA on a linear layer (no variant, no bias on B, weights
    not stored transposed), which `routed` computes exactly."""
    import torch
    from peft.tuners.lora.layer import Linear

    for layer in lora_layers(peft_model):
        if not isinstance(layer, Linear) or not isinstance(layer.get_base_layer(), torch.nn.Linear):
            return False
        if layer.lora_variant or getattr(layer, "fan_in_fan_out", False):
            return False
        if any(b.bias is not None for b in layer.lora_B.values()):
            return False
    return True


def _stacks(layer: Any, adapters: Sequence[str], like: Any) -> tuple[Any, Any]:
    """(len(adapters) + 1, r, in) A and (len(adapters) + 1, out, r) scaled B of `layer`, zero where an
    adapter does not adapt this layer and in the last slot (BASE); ranks below the largest are
    zero-padded, which adds nothing."""
    import torch

    present = [n for n in adapters if n in layer.lora_A]
    ranks = {layer.lora_A[n].weight.shape[0] for n in present}
    if len(present) == len(adapters) and len(ranks) == 1:  # the usual case: one stack of each
        zero_a = like.new_zeros(layer.lora_A[present[0]].weight.shape)
        zero_b = like.new_zeros(layer.lora_B[present[0]].weight.shape)
        a = torch.stack([*(layer.lora_A[n].weight for n in adapters), zero_a])
        b = torch.stack([*(layer.lora_B[n].weight * layer.scaling[n] for n in adapters), zero_b])
        return a, b
    rank, base = max(ranks), layer.get_base_layer()
    a = like.new_zeros((len(adapters) + 1, rank, base.in_features))
    b = like.new_zeros((len(adapters) + 1, base.out_features, rank))
    for slot, name in enumerate(adapters):
        if name in layer.lora_A:
            weight_a, weight_b = layer.lora_A[name].weight, layer.lora_B[name].weight
            r = weight_a.shape[0]
            a[slot, :r] = weight_a
            b[slot, :, :r] = weight_b * layer.scaling[name]
    return a, b


def _forward(layer: Any, adapters: Sequence[str], rows: Any) -> Any:
    """`layer`'s forward for one batch: its base, plus each row's delta added in place."""
    base = layer.get_base_layer()
    present = [n for n in adapters if n in layer.lora_A]
    if not present:
        return base.__call__  # a function: a module set as an attribute would be registered as a child
    if len(present) == len(adapters) == 1 and rows is None:  # every row through one adapter
        name = present[0]
        weight_a, weight_b, scaling = layer.lora_A[name].weight, layer.lora_B[name].weight, layer.scaling[name]

        def one(x: Any) -> Any:
            output = base(x)
            out = output.view(-1, output.shape[-1])  # added in place
            low = x.reshape(-1, x.shape[-1]).to(weight_a.dtype) @ weight_a.T  # (rows x tokens, r)
            out.addmm_(low.to(out.dtype), weight_b.T.to(out.dtype), alpha=scaling)
            return output

        return one
    weight = layer.lora_A[present[0]].weight
    a, b = _stacks(layer, adapters, weight)
    a_rows = a[rows.to(weight.device)].transpose(1, 2)  # (rows, in, r)
    b_rows = b[rows.to(weight.device)].transpose(1, 2)  # (rows, r, out)

    def mixed(x: Any) -> Any:
        output = base(x)
        out = output.view(output.shape[0], -1, output.shape[-1])  # (rows, tokens, out), added in place
        low = x.reshape(x.shape[0], -1, x.shape[-1]).to(weight.dtype).bmm(a_rows)  # (rows, tokens, r)
        out.baddbmm_(low.to(out.dtype), b_rows.to(out.dtype))
        return output

    return mixed


@contextlib.contextmanager
def routed(layers: Sequence[Any], names: Sequence[str]) -> Iterator[None]:
    """Within the block, row i of a forward pass goes through adapter `names[i]` (BASE: none) in
    each of `layers` (lora_layers of a model that `supports` qualifies), for inference: deltas are
    added in place, so use it under torch.inference_mode or no_grad. Each layer's forward is
    replaced for the block (no peft state is touched: switching costs nothing)."""
    import torch

    adapters = [n for n in dict.fromkeys(names) if n != BASE]
    rows = None
    if len(adapters) != 1 or BASE in names:
        slot = {n: i for i, n in enumerate(adapters)}
        rows = torch.tensor([slot.get(n, len(adapters)) for n in names], dtype=torch.long)
    try:
        for layer in layers:
            layer.forward = _forward(layer, adapters, rows)
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)  # the class's forward again

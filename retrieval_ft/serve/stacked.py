"""Mixed-adapter batches in one pass per layer: every row of a batch through its own LoRA adapter.

peft's mixed batches (`adapter_names`) loop over the batch's adapters in every adapted layer,
gathering that adapter's rows, running its two small matmuls and scattering the result back: a
batch that meets twelve adapters makes twelve gathers, 24 matmuls and twelve scatters per layer.
Here each adapted layer runs its frozen base once and adds every row's delta in two batched matmuls
(`x @ A_row^T @ B_row^T`, each row's A and B gathered from the loaded adapters, added in place):
the arithmetic of one adapter whatever the mix, as in Punica's and S-LoRA's batched kernels for
language models. A batch of one adapter takes two plain matmuls per layer. Either way no peft state
is switched per batch (peft's `set_adapter` walks every layer and adapter, a cost that grows with
the adapters loaded), and nothing is stacked per batch: `Stacks` holds each layer's adapters in one
tensor per side, and the adapters' own weights are views of it (no copy).

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
    not stored transposed), which `Stacks` computes exactly."""
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


class _Layer:
    """One LoRA layer's adapters side by side: A (slots, r, in), B (slots, out, r) and each slot's
    scaling; slot i is adapter names[i] (zeros where it does not adapt this layer, zero-padded
    where its rank is below the largest), the last slot BASE (zeros)."""

    def __init__(self, layer: Any, names: Sequence[str]) -> None:
        import torch

        base = layer.get_base_layer()
        # the slots this layer adapts, and their adapters' names
        self.adapted = {slot: name for slot, name in enumerate(names) if name in layer.lora_A}
        present = list(self.adapted.values())
        rank = max((layer.lora_A[n].weight.shape[0] for n in present), default=1)
        like = layer.lora_A[present[0]].weight if present else base.weight  # the adapters' dtype and device
        self.layer, self.base = layer, base
        self.a = like.new_zeros((len(names) + 1, rank, base.in_features))
        self.b = like.new_zeros((len(names) + 1, base.out_features, rank))
        self.scaling = like.new_zeros(len(names) + 1)
        with torch.no_grad():
            for slot, name in self.adapted.items():
                weight_a, weight_b = layer.lora_A[name].weight, layer.lora_B[name].weight
                r = weight_a.shape[0]
                self.a[slot, :r] = weight_a
                self.b[slot, :, :r] = weight_b
                self.scaling[slot] = layer.scaling[name]
                # the adapter's weights become views of the stacks: one copy in memory
                weight_a.data = self.a[slot, :r]
                weight_b.data = self.b[slot, :, :r]

    def forward(self, rows: Any, single: int | None) -> Any:
        """The layer's forward for one batch: the base, plus each row's delta (`rows`: a slot per row;
        `single`: the one slot of every row) added in place."""
        base = self.base
        if not self.adapted or (single is not None and single not in self.adapted):
            return base.__call__  # a function: a module set as an attribute would be registered as a child
        if single is not None:
            a, b, scaling = self.a[single], self.b[single], float(self.scaling[single])

            def one(x: Any) -> Any:
                output = base(x)
                out = output.view(-1, output.shape[-1])  # added in place
                low = x.reshape(-1, x.shape[-1]).to(a.dtype) @ a.T  # (rows x tokens, r)
                out.addmm_(low.to(out.dtype), b.T.to(out.dtype), alpha=scaling)
                return output

            return one

        def mixed(x: Any) -> Any:
            a_rows = self.a[rows].transpose(1, 2)  # (rows, in, r)
            b_rows = (self.b[rows] * self.scaling[rows, None, None]).transpose(1, 2)  # (rows, r, out)
            output = base(x)
            out = output.view(output.shape[0], -1, output.shape[-1])  # (rows, tokens, out), added in place
            low = x.reshape(x.shape[0], -1, x.shape[-1]).to(a_rows.dtype).bmm(a_rows)  # (rows, tokens, r)
            out.baddbmm_(low.to(out.dtype), b_rows.to(out.dtype))
            return output

        return mixed


class Stacks:
    """The LoRA layers of a peft model that `supports` qualifies, each with its loaded adapters side
    by side. Build it again after an adapter is loaded or deleted (the adapters' weights are made
    views of the new stacks, and the old ones freed)."""

    def __init__(self, peft_model: Any) -> None:
        self.names = list(peft_model.peft_config)
        self.slot = {n: i for i, n in enumerate(self.names)} | {BASE: len(self.names)}
        self.layers = [_Layer(layer, self.names) for layer in lora_layers(peft_model)]

    @contextlib.contextmanager
    def routed(self, names: Sequence[str]) -> Iterator[None]:
        """Within the block, row i of a forward pass goes through adapter `names[i]` (BASE: none),
        for inference: deltas are added in place, so use it under torch.inference_mode or no_grad.
        Each layer's forward is replaced for the block; no peft state is touched."""
        import torch

        slots = [self.slot[n] for n in names]
        single = slots[0] if len(set(slots)) == 1 else None
        rows = None if single is not None else torch.tensor(slots, dtype=torch.long, device=self.layers[0].a.device)
        try:
            for stack in self.layers:
                stack.layer.forward = stack.forward(rows, single)
            yield
        finally:
            for stack in self.layers:
                stack.layer.__dict__.pop("forward", None)  # the class's forward again

"""Threshold masks of a weight-masked MLP trained at the cost of their matrix products.

The general path (`training.MaskTrainer`) runs autograd and `torch.optim.RMSprop` over one score
tensor per layer: about half its time was bookkeeping, not arithmetic the task needs. Here the
backward pass is written out (the same matrix products autograd calls, in the same layouts), and the
scores, their RMSprop state, their gradient and the masked weights each live in one contiguous
buffer, so that the straight-through gradient and the optimizer step are a few passes over one flat
buffer, allocated once per task. Every operation is the one autograd and RMSprop perform, in the
same order, so the masks are bit for bit those of the general path (tests/test_flat_training.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from supsup_cli.core import native
from supsup_cli.engine import distributed
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import ArchSpec

if TYPE_CHECKING:  # training imports this module
    from supsup_cli.engine.training import TrainConfig

_RMSPROP_ALPHA, _RMSPROP_EPS = 0.99, 1e-8  # torch.optim.RMSprop's defaults, which the paper's code keeps


def flat_refusal(spec: ArchSpec, config: TrainConfig, augment: bool) -> str | None:
    """Why a task cannot take the flat path, or None if it can."""
    if spec.family != "mlp" or spec.mask_on != "weights" or spec.norm == "batch":
        return f"{spec.name} is not a weight-masked MLP without batch norm"
    if config.top_k:
        return "top-k masks are chosen by rank"
    if config.optimizer != "rmsprop" or config.schedule != "constant":
        return "only RMSprop at a constant learning rate is written out"
    if augment:
        return "augmented data"
    if distributed.world_size() > 1:
        return "under torchrun the gradients are averaged by DistributedDataParallel"
    return None


class FlatMaskTrainer:
    """One task's threshold mask over an MLP's frozen weights: forward, written-out backward, RMSprop."""

    def __init__(self, net: MaskedNet, scores: Sequence[torch.Tensor], lr: float) -> None:
        weights = net.base()
        self.sizes = [w.numel() for w in weights]
        self.activation = F.relu if net.spec.activation == "relu" else None
        if self.activation is None:
            raise ValueError(f"{net.spec.name}: the flat path writes out ReLU's derivative only")
        device = weights[0].device
        self.weight = torch.cat([w.reshape(-1) for w in weights])
        self.scores = torch.cat([s.reshape(-1) for s in scores]).to(device)
        self.square_avg = torch.zeros_like(self.scores)
        self.grad = torch.empty_like(self.scores)
        self.masked = torch.empty_like(self.scores)
        self.denominator = torch.empty_like(self.scores)
        self.masked_layers = self._layers(self.masked, weights)
        self.grad_layers = self._layers(self.grad, weights)
        self.lr = lr
        self.native = native.kernels() if device.type == "cpu" else None
        self._mask_weights()
        self._nll_buffer: torch.Tensor | None = None
        self.steps = 0
        self._minus_inverse_batch = 0.0

    def _nll_grad(self, shape: torch.Size) -> torch.Tensor:
        if self._nll_buffer is None or self._nll_buffer.shape != shape:
            self._nll_buffer = torch.empty(shape, device=self.weight.device)
            # -(1 / B) rounded once in float32, as nll_loss's backward computes it
            self._minus_inverse_batch = float(-(torch.ones((), dtype=torch.float32) / shape[0]))
        return self._nll_buffer

    def _layers(self, flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [part.view(w.shape) for part, w in zip(flat.split(self.sizes), like)]

    def step(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of cross-entropy on a batch of normalized inputs; returns (loss, logits)."""
        x = x.reshape(x.shape[0], -1)
        inputs = [x]
        *hidden, last = self.masked_layers
        for weight in hidden:
            inputs.append(torch.relu(torch.mm(inputs[-1], weight.t())))
        logits = torch.mm(inputs[-1], last.t())

        log_probs = torch.log_softmax(logits, 1)
        loss = F.nll_loss(log_probs, targets)
        # cross-entropy's gradient as autograd computes it: nll_loss's (-1/B at each target), then log_softmax's
        nll_grad = self._nll_grad(logits.shape)
        nll_grad.zero_().scatter_(1, targets.unsqueeze(1), self._minus_inverse_batch)
        delta = torch.ops.aten._log_softmax_backward_data(nll_grad, log_probs, 1, log_probs.dtype)
        for index in range(len(self.masked_layers) - 1, -1, -1):
            # autograd's layouts for mm(h, W.t()): dW = (delta^T h), dh = delta W
            torch.mm(delta.t(), inputs[index], out=self.grad_layers[index])
            if index > 0:
                delta = torch.ops.aten.threshold_backward(torch.mm(delta, self.masked_layers[index]),
                                                          inputs[index], 0)

        self._rmsprop_step()
        self.steps += 1
        return loss.detach(), logits

    def _rmsprop_step(self) -> None:
        """torch.optim.RMSprop's single-tensor step, operation for operation, on the straight-through
        gradient (d score = d(W * M) * W); then the masked weights of the new scores."""
        if self.native is not None:  # the same operations in two passes (core.native)
            threads, n = torch.get_num_threads(), self.scores.numel()
            self.native.supsup_square_avg(n, self.weight.data_ptr(), self.grad.data_ptr(), self.square_avg.data_ptr(),
                                          _RMSPROP_ALPHA, 1 - _RMSPROP_ALPHA, threads)
            torch.sqrt(self.square_avg, out=self.denominator)
            self.native.supsup_update(n, self.scores.data_ptr(), self.weight.data_ptr(), self.grad.data_ptr(),
                                      self.denominator.data_ptr(), self.masked.data_ptr(), _RMSPROP_EPS, -self.lr,
                                      threads)
            return
        grad = self.grad.mul_(self.weight)
        self.square_avg.mul_(_RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - _RMSPROP_ALPHA)
        torch.sqrt(self.square_avg, out=self.denominator).add_(_RMSPROP_EPS)
        self.scores.addcdiv_(grad, self.denominator, value=-self.lr)
        self._mask_weights()

    def _mask_weights(self) -> None:
        # W * (scores >= 0), as _ThresholdMaskedWeight computes it: the mask straight to float, times W.
        torch.ge(self.scores, 0, out=self.masked).mul_(self.weight)

    def masks(self) -> list[torch.Tensor]:
        """The current binary mask per layer (bool, on the CPU)."""
        return [part.view(shape) >= 0 for part, shape in
                zip(self.scores.cpu().split(self.sizes), (w.shape for w in self.masked_layers))]


class FlatInputs:
    """A task's uint8 images gathered into reused buffers and normalized in place: the operations of
    `models.normalize`, on one batch at a time, without a new tensor per step."""

    def __init__(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], batch_size: int) -> None:
        if len(mean) != 1:
            raise ValueError("one channel only")
        self.images = images.reshape(images.shape[0], -1)
        self.mean, self.std = float(mean[0]), float(std[0])
        self.gathered = torch.empty(batch_size, self.images.shape[1], dtype=torch.uint8, device=images.device)
        self.x = torch.empty(self.gathered.shape, device=images.device)

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        torch.index_select(self.images, 0, index, out=self.gathered)
        return self.x.copy_(self.gathered).div_(255.0).sub_(self.mean).div_(self.std)

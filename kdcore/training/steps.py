"""One optimisation step over a batch of resident data, eager or replayed as a CUDA graph.

Both paths run the same code: gather the batch by index, forward and loss (the run's ``loss_fn``),
backward, optimiser step. Loss values accumulate on the device, so an epoch needs a single host sync
at its end.
"""

from __future__ import annotations

import threading
from typing import Callable

import torch

from kdcore.training.fallback import CUDA_GRAPHS, Fallbacks, out_of_memory

# torch.cuda.graph synchronises the device and empties the cache on entry, which would
# invalidate a capture under way in another thread: captures take turns.
_capture_lock = threading.Lock()


def graphs_apply(config, device: torch.device) -> bool:
    """Whether a run's steps are replayed as a CUDA graph: on CUDA, unless switched off, with resident data,
    for a method whose step does not synchronise with the host (``Method.host_sync``)."""
    return device.type == "cuda" and config.cuda_graphs and config.resident_data and not config.method.host_sync


class StepRunner:
    def __init__(
        self, parameters: list[torch.Tensor], optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]],
        split, batch_size: int, num_terms: int, use_graph: bool, fallbacks: Fallbacks,
        counters: tuple[torch.Tensor, ...] = (), refused: BaseException | None = None,
    ):
        """``loss_fn(batch, labels, index)`` returns ``(total, terms)``. ``counters`` are device tensors
        the step itself advances (the step count): a capture restores them like the weights. A capture
        that raises leaves everything as it was and the steps run eagerly (``fallbacks``); so does
        ``refused``, why the step must not be captured (the graph-safety probe's failure), without trying."""
        self.parameters, self.optimizer, self.loss_fn = parameters, optimizer, loss_fn
        self.split, self.counters, self.fallbacks = split, counters, fallbacks
        # Row 0: weighted total; then one row per term. Sums of batch means, as the tutorial logs.
        self.sums = torch.zeros(num_terms + 1, device=split.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_index: torch.Tensor | None = None
        # A capture's error, until an eager step shows that the graph, not the step, was what failed.
        self.failed_capture: BaseException | None = refused if use_graph else None
        if use_graph and refused is None and not fallbacks.is_off(CUDA_GRAPHS):
            with _capture_lock:
                self._try_capture(batch_size)

    def _body(self, index: torch.Tensor) -> None:
        batch = self.split.gather(index)
        labels = self.split.labels.index_select(0, index)
        total, terms = self.loss_fn(batch, labels, index)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.sums += torch.stack([total.detach(), *(t.detach() for t in terms.values())])

    def step(self, index: torch.Tensor) -> None:
        if self.graph is not None and len(index) == len(self.static_index):
            self.static_index.copy_(index)
            self.graph.replay()
        else:
            self._body(index)
            if self.failed_capture is not None:
                failure, self.failed_capture = self.failed_capture, None
                self.fallbacks.record(CUDA_GRAPHS, failure, "the steps run eagerly")

    def take_sums(self) -> torch.Tensor:
        sums = self.sums.clone()
        self.sums.zero_()
        return sums

    def _try_capture(self, batch_size: int) -> None:
        """Capture, leaving model and optimiser as they were whether it succeeds or raises. Capturing
        needs a few warm-up steps, which change the weights, Adam's moments and the counters: all are
        snapshotted first and restored in place afterwards (after a failure the random numbers too, so
        that the eager steps are those of a run that never tried)."""
        params = [p.detach().clone() for p in [*self.parameters, *self.counters]]
        moments = [t.clone() for t in self._optimizer_tensors()]  # empty for a fresh optimizer
        cuda = self.split.device.type == "cuda"
        rng = torch.get_rng_state(), torch.cuda.get_rng_state(self.split.device) if cuda else None
        stream = torch.cuda.current_stream(self.split.device) if cuda else None
        try:
            self._capture(batch_size)
        except Exception as error:
            if out_of_memory(error):
                raise
            self.failed_capture = error
            self.graph = None
            if cuda:
                # A capture that raised inside torch.cuda.graph leaves its capture stream current.
                torch.cuda.set_stream(stream)
                torch.cuda.synchronize(self.split.device)
                torch.cuda.set_rng_state(rng[1], self.split.device)
            torch.set_rng_state(rng[0])
            self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for parameter, saved in zip([*self.parameters, *self.counters], params):
                parameter.copy_(saved)
            fresh = not moments
            for tensor in self._optimizer_tensors():
                # A fresh Adam state is all zeros (step 0, no moments), so zeroing restores it.
                if fresh:
                    tensor.zero_()
                else:
                    tensor.copy_(moments.pop(0))
            self.sums.zero_()

    def _capture(self, batch_size: int) -> None:
        """Record one full-batch step as a CUDA graph, after the warm-up steps on a side stream that
        capturing needs (their effects are undone by the caller)."""
        self.static_index = torch.arange(batch_size, device=self.split.device) % len(self.split)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._body(self.static_index)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        # Own capture stream and thread-local capture mode: other runs may train in other threads.
        with torch.cuda.graph(self.graph, stream=torch.cuda.Stream(), capture_error_mode="thread_local"):
            self._body(self.static_index)

    def _optimizer_tensors(self) -> list[torch.Tensor]:
        return [v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]

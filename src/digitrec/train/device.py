"""Where a training run executes: the device, mixed precision, the processes of a DDP run, threads.

None of this changes what is learned (the recipe does): a run on CUDA draws the same random numbers
as on CPU (from CPU generators), and its checkpoint loads anywhere (`map_location="cpu"`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from digitrec.errors import DigitrecError

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Placement:
    device: torch.device
    rank: int = 0  # this process in a DDP run (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)
    world: int = 1

    @property
    def is_main(self) -> bool:
        """The one process that writes checkpoints, metrics and config, and reports progress."""
        return self.rank == 0

    def autocast(self):
        """bfloat16 autocast on CUDA (no loss scaling needed); full float32 elsewhere: CPU autocast
        is slower than float32 for these small convolutions, and MPS's is incomplete."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when present, else CPU (MPS only when asked: on small nets it is rarely faster)."""
    if name not in DEVICES:
        raise DigitrecError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DigitrecError(
                "--device cuda: no CUDA GPU is visible to PyTorch here "
                "(a CPU-only PyTorch build, or no driver); use --device cpu or auto"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DigitrecError("--device mps: Apple's Metal backend is not available here; use --device cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def start(device: str = "auto") -> Placement:
    """One process, or this process's place in a `torchrun` run (joins the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Placement(resolve_device(device))
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    placement = Placement(resolve_device(device, local_rank), rank, world)
    if placement.device.type == "cuda":
        torch.cuda.set_device(placement.device)  # NCCL's communicator for this rank lives on its own GPU
    if not dist.is_initialized():
        # NCCL between GPUs; gloo between CPU processes (NCCL has no CPU path).
        dist.init_process_group("nccl" if placement.device.type == "cuda" else "gloo")
    return placement


def finish(placement: Placement) -> None:
    if placement.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

"""Training on several processes with PyTorch's own engine: its elastic launcher (the module
behind `torchrun`) starts the processes, DistributedDataParallel averages their gradients.

One process needs none of this: `World()` is a run of one, and every function here is then a
no-op or a plain return, so the single-process path stays exactly what it was.

How a run of N processes stays the run of one (pipeline/training/step.py and train.py do the rest):
- every process draws the same global batches from the same seeded order and takes its share
  of each (contiguous rows, padded to the global batch's lengths);
- each process's loss is its tokens' summed loss over the global batch's count of target
  tokens, times N (DDP divides the summed gradients by N), so the averaged gradient is the
  one-process gradient; the token count is known on the host before the step;
- teacher-forcing draws come from the same seeded generator in every process;
- a process whose share is empty (a global batch with fewer rows than processes) runs one row
  with weight zero, so that it joins every all-reduce and nobody waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pipeline.errors import PipelineError, is_peer_loss


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank 0 of 1 unless started by the launcher."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes: checkpoints, the model directory, curves, progress."""
        return self.rank == 0


ONE = World()  # a run of one process


def in_worker() -> bool:
    """Started by torchrun or by `launch` (they set these for every process)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch(processes: int, argv: list[str], what: str) -> None:
    """Run `argv` as `processes` processes on this machine under PyTorch's elastic launcher
    and wait for them. A process that fails or dies ends the run: the launcher stops the
    others, and this raises one line naming the process and its error."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes,
                          run_id=f"fren-nmt-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2)
    print(f"{what}: starting {processes} processes", flush=True)
    # The launcher logs every failure as a multi-line report; ours is the one line below.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, entrypoint=argv[0])(*argv[1:])
    except ChildFailedError as e:
        raise PipelineError(f"{what}: {first_failure(e.failures, processes)}") from None


def first_failure(failures: dict, processes: int) -> str:
    """The root cause among the failed processes, as one line. A process that raised its own
    error comes first, then one killed by a signal, then one that only lost its peers (gloo
    and NCCL raise in every survivor), and last one that the launcher itself stopped."""
    def describe(f) -> tuple[int, str]:  # noqa: ANN001
        message = f.message if isinstance(f.message, str) else json.dumps(f.message)
        # a process that wrote its error (errors.record_error) and then died in the C++
        # teardown on its way out (SIGABRT, seen under load) failed with that error
        wrote = (f.error_file_data or {}).get("message") not in (None, "<NONE>")
        if f.exitcode < 0 and not wrote:
            name = f.signal_name()
            return (3 if name == "SIGTERM" else 1), f"killed by {name}"
        if message.startswith("To enable traceback"):  # no error file: it just exited
            return 1, f"exit code {f.exitcode}"
        return (2 if is_peer_loss(message) else 0), message

    ranked = sorted((describe(f)[0], f.timestamp, rank, describe(f)[1])
                    for rank, f in failures.items())
    _, _, rank, why = ranked[0]
    return f"process {rank} of {processes} failed: {why}"


def init(device: torch.device, timeout_s: float, first_gpu: int = 0
         ) -> tuple[World, torch.device]:
    """Join the run this process was started in (gloo on the CPU, NCCL with one GPU per
    process on CUDA: GPU first_gpu + local rank); a process not started by a launcher is a
    run of one. Returns the world and this process's device."""
    world = World()
    if in_worker() and int(os.environ["WORLD_SIZE"]) > 1:
        world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                      int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"]))
    if device.type == "cuda":
        last = first_gpu + world.local_size - 1
        if last >= torch.cuda.device_count():
            raise PipelineError(f"runtime.first_gpu {first_gpu} and {world.local_size} "
                                f"process(es) need GPUs {first_gpu}..{last}, but there are "
                                f"{torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", first_gpu + world.local_rank)
        torch.cuda.set_device(device)
    if world.size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s))
    return world, device


@contextmanager
def process_group(world: World) -> Iterator[None]:
    """Run the body, then end the process group: at a barrier if the body finished (close),
    at once if it raised. A finished process of several then exits here, with code 0."""
    try:
        yield
    except BaseException:
        close(world)
        raise
    close(world, finished=True)
    if world.size > 1:
        # Done, and everything written (atomic renames): leave without the interpreter's and
        # the C++ libraries' teardown, where a process of a finished run was seen to abort
        # now and then ("terminate called without an active exception": 2 of 40 runs of
        # tests/integration/dist_worker.py beside another, 2026-12-05)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def close(world: World, finished: bool = False) -> None:
    """End the process group. A run that `finished` first waits for every process at a
    barrier: the first process hosts the group's store, and one that leaves while another is
    still tearing down can abort that one ("terminate called without an active exception").
    A run that failed does not wait: the others may be gone."""
    if world.size > 1 and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def share(rows: int, world: World) -> tuple[int, int]:
    """This process's contiguous rows [lo, hi) of a global batch of `rows` rows."""
    base, extra = divmod(rows, world.size)
    lo = world.rank * base + min(world.rank, extra)
    return lo, lo + base + (world.rank < extra)


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """The sum over processes (in place), or `t` itself in a run of one."""
    if world.size > 1:
        dist.all_reduce(t)
    return t


def gather(obj: object, world: World) -> list:
    """Every process's `obj`, in rank order ([obj] in a run of one)."""
    if world.size == 1:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def from_main(obj: object, world: World) -> object:
    """The first process's `obj` in every process (a checkpoint it alone has read: on several
    machines the others may not see its disk)."""
    if world.size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def threads_per_process(world: World) -> int:
    """The CPU's cores shared among this machine's processes (at least one each)."""
    return max(1, (os.cpu_count() or 1) // world.local_size)


def main_print(world: World, *args: object, **kwargs: object) -> None:
    if world.main:
        print(*args, **kwargs, flush=True)


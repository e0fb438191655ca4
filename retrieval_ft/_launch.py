"""What a launcher (torchrun, accelerate launch) tells this process through the environment: its
rank, the number of processes and its rank on this machine. Imports nothing heavy (the CLI reads
it before any command)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launch_env() -> Launch:
    """RANK, WORLD_SIZE and LOCAL_RANK; each one unset or malformed reads as a lone process's."""
    return Launch(_int("RANK", 0), _int("WORLD_SIZE", 1), _int("LOCAL_RANK", 0))

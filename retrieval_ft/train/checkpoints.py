"""Checkpoints of a training run: the newest complete one, and the settings that wrote them, which
a resumed run must match. Knows nothing of models or data beyond the settings it is given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .distributed import World, from_main

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_SETTINGS = "run-settings.json"  # in the checkpoints folder: what --resume must match


def checkpoint_to_resume(out: Path, resume: bool, world: World) -> Path | None:
    """The checkpoint in `out/checkpoints` to continue from (None: start afresh). Checkpoints there
    without `resume`, or that rank 0 does not see as this process does, are refused."""
    ckpt_dir = out / CHECKPOINTS
    last = _last_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    main_last = from_main(world, last)
    if main_last != last:
        # rank 0 alone writes checkpoints: a process that does not see them would start afresh
        # while the others resume, and the processes would wait on each other for ever
        raise ConfigError(f"{ckpt_dir}: rank {world.rank} sees {last.name if last else 'no checkpoint'} but rank 0 sees "
                          f"{main_last.name if main_last else 'none'}; with several machines, --out must be a folder "
                          "that every machine sees (shared storage, the same path).")
    if last is not None and not resume:
        raise ConfigError(f"{out} holds checkpoints of an earlier run ({last.name}); pass --resume to continue it, "
                          "or choose another output folder.")
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s; starting from the beginning.", ckpt_dir)
    return last if resume else None


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def check_same_run(ckpt_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume checkpoints written with other settings (model, data, training config)."""
    path = ckpt_dir / RUN_SETTINGS
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        logger.warning("%s: no record of the settings that wrote these checkpoints; resuming as asked.", ckpt_dir)
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); delete {ckpt_dir} to start the run again.") from None
    now = _flat(json.loads(json.dumps(settings, default=str)))
    before = _flat(saved)
    changed = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(now) | set(before)) if now.get(k) != before.get(k)]
    if changed:
        shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError(f"{ckpt_dir}: these checkpoints were written with other settings ({shown}); resuming "
                          "would mix two runs. Resume with the same settings, or start again in another --out "
                          f"(or delete {ckpt_dir}).")


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the Trainer writes trainer_state.json last, so a checkpoint
    torn by a kill mid-save is skipped."""
    ckpts = [p for p in folder.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None

"""Which runs may train together in one pack (see kdcore.training.packing.trainer). Torch-free, so that a scheduler that
never imports torch (the worker's supervisor, the web process) can group queued runs.

Runs pack together when they train the same network on the same data in the same steps: one
architecture, dataset, subset and validation split, batch size and epoch count, one recipe (the optimiser and its
learning-rate schedule act on all the runs' weights as one), one arithmetic, one device and data
placement, one step mode. Everything else may differ run by run: the method and its hyperparameters,
the seed, the teacher and which of its weights, whether its outputs are cached; but not the extra augmented
views its method asks for.
"""

from __future__ import annotations

from typing import Any, Iterable

PACK_FIELDS: tuple[str, ...] = (
    "architecture", "dataset", "subset", "validation", "batch_size", "epochs",
    "optimizer", "lr", "momentum", "weight_decay", "schedule", "milestones", "lr_decay", "warmup_epochs", "augment",
    "precision", "device", "resident_data", "cuda_graphs",
)


class _Alone:
    """A part of a pack key equal to nothing, itself included: a run whose key holds one packs with no other."""

    def __eq__(self, other) -> bool:
        return False

    __hash__ = object.__hash__


def trains_alone(config) -> str | None:
    """Why the run cannot share a pack whatever the others are, or None. A method's pre-stage
    (kdcore.methods.base.Stage) trains other parameters by another optimiser for other epochs than the
    main stage: the pack's one step and one optimiser cannot hold it, so such a run trains alone."""
    stage = config.method.pre_stage
    if stage is not None and stage.epochs(config.params) > 0:
        return f"method {config.kind!r} has a pre-stage ({stage.name}), and a run with one trains alone"
    # A pack evaluates its runs' own networks stacked; a student that ships more (Method.deployed: SimKD's
    # projector and the teacher's head) is evaluated as it ships, which the stacked evaluation cannot do yet.
    if config.method.deployed is not None:
        return (f"method {config.kind!r} ships more than the student's network (its deployed student), and a run "
                "with one trains alone")
    return None


# Beyond the configuration's fields: the extra views of each batch its method asks for (Method.views). A
# vmapped pack makes a view for all its runs at once, and a run that asked for none must not train on it
# (its batch-norm statistics would move), so runs pack only with runs that ask for the same views.
METHOD_FIELDS: tuple[str, ...] = ("views",)


def pack_key(config) -> tuple[tuple[str, Any], ...]:
    """Equal for two RunConfigs exactly when they can train in one pack; hashable, for grouping."""
    key = (*((name, getattr(config, name)) for name in PACK_FIELDS),
           *((name, tuple(getattr(config.method, name))) for name in METHOD_FIELDS))
    return key + (("alone", _Alone()),) if trains_alone(config) else key


def differing_fields(configs: Iterable) -> list[str]:
    """The pack fields on which these configurations disagree (empty: they can train together)."""
    keys = [dict(pack_key(config)) for config in configs]
    return [name for name in (*PACK_FIELDS, *METHOD_FIELDS) if any(key[name] != keys[0][name] for key in keys[1:])]


# Runs per pack when none is asked for. On a CPU a pack is no faster than its runs one after another at
# equal threads (0.98x on the 2-core VM, bench/bench_packed.py: the convolutions are compute-bound, and
# what a pack shares is a small part of a step), and its runs would all finish at the end: one run at a
# time. On a GPU small networks leave it mostly idle.
DEFAULT_PACK = {"cpu": 1, "cuda": 8}


def default_pack(device_type: str) -> int:
    """The pack size for runs on this kind of device ("cpu", "cuda")."""
    return DEFAULT_PACK.get(device_type, 1)

"""Teachers imported from the reference frameworks give the logits of the frameworks' own networks.

For every zoo network the frameworks have, this builds their network (mdistiller's and RepDistiller's model
files), gives it random weights and random batch-norm statistics, saves it as each framework saves checkpoints,
imports the file with ``kd import-teacher``'s function, loads the result with ``kdcore.load_model`` and compares
both networks' logits on random images, in eval mode. Not part of the suite (it runs the other projects' code):

    python bench/check_teacher_import.py [MDISTILLER REPDISTILLER]

(default: the checkouts under /work/refs; skipped when they are absent). It prints one row per network and
file: the largest absolute logit difference, beside the largest logit.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kdcore  # noqa: E402
from kdcore.architectures import canonical, registry  # noqa: E402
from kdcore.training.teacher_import import import_teacher  # noqa: E402

DEFAULTS = ("/work/refs/megvii-research+mdistiller", "/work/refs/HobbitLong+RepDistiller")
NUM_CLASSES = 100


def frameworks(checkouts: list[Path]) -> dict[str, dict[str, object]]:
    mdistiller, repdistiller = checkouts
    sys.path.insert(0, str(mdistiller))
    from mdistiller.models.cifar import cifar_model_dict

    sys.path.insert(0, str(repdistiller))
    from models import model_dict

    return {"mdistiller": {name: entry[0] for name, entry in cifar_model_dict.items()}, "repdistiller": model_dict}


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The framework's random weights, batch norms with random scales and shifts, and running statistics measured
    on random images (so that eval mode is neither the identity nor, 110 layers on, overflowing)."""
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for module in norms:
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
            module.bias.copy_(0.4 * torch.rand(module.bias.shape, generator=generator) - 0.2)
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the measuring batches
        model.train()
        for _ in range(4):
            model(torch.randn(16, 3, 32, 32, generator=generator))
    return model.eval()


def saved_as(fmt: str, model: torch.nn.Module, how: str) -> dict:
    """The file the framework writes: RepDistiller's train_teacher.py, mdistiller's trainer (its student_best, and
    its whole distiller under DataParallel in latest/best)."""
    state = model.state_dict()
    if how == "teacher":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return {"epoch": 240, "model": state, "accuracy": torch.tensor(73.4), "optimizer": optimizer.state_dict()}
    if how == "student_best":
        return {"model": state}
    distiller = {f"module.student.{k}": v for k, v in state.items()}
    distiller.update({f"module.teacher.{k}": torch.zeros_like(v) for k, v in state.items()})
    return {"epoch": 240, "model": distiller, "optimizer": {"state": {}, "param_groups": []}, "best_acc": 71.2}


def main(checkouts: list[str]) -> int:
    paths = [Path(c) for c in checkouts]
    if not all(p.is_dir() for p in paths):
        print(f"skipped: reference checkouts not found ({', '.join(checkouts)})")
        return 0
    zoo, models = registry(), frameworks(paths)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    files = {"repdistiller": ("teacher",), "mdistiller": ("student_best", "latest")}
    print("| network | framework | file | max abs logit diff | max abs logit |\n|---|---|---|---|---|")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for fmt, constructors in models.items():
            for seed, (name, constructor) in enumerate(constructors.items()):
                if canonical(name) not in zoo or (name != canonical(name) and canonical(name) in constructors):
                    continue  # not in the zoo, or an alias of a name already checked
                reference = randomised(constructor(num_classes=NUM_CLASSES), seed)
                with torch.no_grad():
                    out = reference(images)
                    expected = out[0] if isinstance(out, tuple) else out  # mdistiller's: (logits, features)
                for how in files[fmt]:
                    source = Path(folder) / f"{fmt}-{name}-{how}.pth"
                    torch.save(saved_as(fmt, reference, how), source)
                    checkpoint = import_teacher(source, name, NUM_CLASSES, fmt, Path(folder) / f"{fmt}-{name}-{how}")
                    with torch.no_grad():
                        logits = kdcore.load_model(checkpoint)(images)[0]
                    diff = (logits - expected).abs().max().item()
                    worst = max(worst, diff)
                    print(f"| {name} ({canonical(name)}) | {fmt} | {how} | {diff:.2e} | "
                          f"{expected.abs().max().item():.3g} |")
    print(f"worst: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(DEFAULTS)))

"""The confirmation: the search's top k configurations re-run as a study over n fresh seeds at the full epoch
count, beside the baseline student and plain KD (the KD method at its declared defaults), all against the
search's teacher and recipe. The study reports test accuracy, which the search never looked at; ``verdict`` says
whether the search's winner held up. Torch-free."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.registry import BASELINE_KIND
from kdcore.studies.stats import difference
from kdcore.studies.study import RECIPE_FIELDS, StudySpec, parse_spec

PLAIN_KD = "kd"  # the reference every distillation method is measured against
DEFAULT_TOP_K = 3
DEFAULT_SEEDS = 5


def confirmation_seeds(n: int, search_seed: int) -> list[int]:
    """n seeds the search did not train with: its trials all share ``search_seed``, and a configuration picked on
    that seed's validation accuracy would carry the pick's luck into its confirmation."""
    if n < 2:
        raise KDError("a confirmation needs at least 2 seeds: one seed is an anecdote, not a spread")
    return [seed for seed in range(n + 1) if seed != search_seed][:n]


def top_configs(trials: Sequence[Mapping[str, Any]], k: int) -> list[RunConfig]:
    """The k best completed trials' configurations by validation accuracy, each configuration once. A trial is
    ``{"status", "val_accuracy", "config": RunConfig}``; pruned trials never ran their full length, so they
    do not compete."""
    done = [t for t in trials if t["status"] == "completed" and t["val_accuracy"] is not None]
    chosen: list[RunConfig] = []
    for trial in sorted(done, key=lambda t: -t["val_accuracy"]):
        if any(_same_run(trial["config"], other) for other in chosen):
            continue
        chosen.append(trial["config"])
        if len(chosen) == k:
            break
    return chosen


def _same_run(a: RunConfig, b: RunConfig) -> bool:
    return a.kind == b.kind and a.params == b.params


def confirmation_spec(configs: Sequence[RunConfig], seeds: Sequence[int], *, epochs: int | None = None,
                      name: str | None = None) -> StudySpec:
    """The confirmation study of ``configs`` (top_configs, best first, all of one recipe): each over ``seeds`` at
    ``epochs`` (default: the trials' own), with the baseline student and plain KD on the same network, data and
    recipe. Its teacher is the search's: give it to kd sweep's ``prepare`` as the external teacher."""
    if not configs:
        raise KDError("no trial completed: there is nothing to confirm")
    first = configs[0].to_json_dict()
    recipe = {field: first[field] for field in RECIPE_FIELDS if field in first}
    entries: list[Any] = [BASELINE_KIND] if BASELINE_KIND else []
    plain = RunConfig(kind=PLAIN_KD, **{k: v for k, v in first.items() if k not in ("kind", "params")})
    if not any(_same_run(plain, config) for config in configs):
        entries.append(PLAIN_KD)
    entries += [{"method": c.kind, "params": c.to_json_dict()["params"]} for c in configs]
    payload = {"name": name, "dataset": first["dataset"], "subset": first["subset"], "methods": entries,
               "architectures": [first["architecture"]], "seeds": list(seeds),
               "epochs": epochs or first["epochs"], **recipe}
    return parse_spec(payload)


def verdict(groups: Sequence[Mapping[str, Any]], finals: Mapping[str, Mapping[int, float]],
            winner: RunConfig) -> dict[str, Any]:
    """Whether the search's winner held up on the test set: ``groups`` are the confirmation's (kd sweep's summary
    ``groups``), ``finals`` each group's final test accuracy by seed. Held up: above both the baseline student and
    plain KD beyond the noise (p < 0.05). ``status``: held_up, inside_noise, worse (significantly below a
    reference) or unknown (the winner has no confirmed result); ``text``: the plain sentence the page shows."""
    params = winner.to_json_dict()["params"]
    mine = next((g for g in groups if g["method"] == winner.kind and _json(g["params"]) == _json(params)
                 and g["role"] != "baseline"), None)
    label = mine["label"] if mine and "label" in mine else f"{winner.kind} {params}"
    if mine is None or not mine["n"]:
        return {"status": "unknown", "group": None, "text": f"The search's winner ({label}) has no confirmed result."}
    references = [g for g in groups if g["role"] == "baseline"]
    plain = next((g for g in groups if g["method"] == PLAIN_KD and g["key"] != mine["key"]
                  and _json(g["params"]) == _json(RunConfig(kind=PLAIN_KD).to_json_dict()["params"])), None)
    references += [plain] if plain else []
    compared, held, worse = [], True, False
    for ref in references:
        diff = difference(finals.get(mine["key"], {}), finals.get(ref["key"], {}))
        if diff is None:
            held = False
            continue
        significant = diff.p_value is not None and diff.p_value < 0.05
        p = "too few seeds for a test" if diff.p_value is None else f"p = {diff.p_value:.3f}"
        compared.append(f"{100 * diff.mean:+.2f} pt vs {ref['label'] if 'label' in ref else ref['method']} ({p})")
        held &= significant and diff.mean > 0
        worse |= significant and diff.mean < 0
    rivals = [g for g in groups if g["role"] == "method" and g["key"] != mine["key"] and g["n"]
              and g["mean"] is not None and g["mean"] > mine["mean"]]
    status = "held_up" if held and compared else "worse" if worse else "inside_noise"
    figures = f"{100 * mine['mean']:.2f}" + (f" ± {100 * mine['std']:.2f}" if mine["std"] is not None else "")
    said = {"held_up": "held up", "worse": "did not hold up: it is significantly below a reference",
            "inside_noise": "did not clearly hold up: its difference to a reference is inside the noise"}[status]
    text = (f"The search's winner ({label}) {said}; on the test set over {mine['n']} seeds it scores {figures} % "
            f"({'; '.join(compared) or 'no reference completed'}).")
    if rivals:
        text += f" {rivals[0]['label'] if 'label' in rivals[0] else rivals[0]['method']}, ranked lower by the " \
                "search, has the higher test mean."
    return {"status": status, "group": mine["key"], "text": text}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)

"""A time-to-quality report rebuilt from its runs as they are now.

A study's table is written when its runs stop. Runs change after that: one is resumed for more
minutes (``textgan train --resume RUN --max-minutes M`` keeps the run's wall clock), or a second
study trains another recipe under the same conditions. ``rebuild_report`` rereads the runs of one
or more ``textgan study compare`` folders, with their recipes and seeds from each ``study.json``
and each run's status as it is now, and writes one ``study.json``/``study.md``/figure over all
of them, with new targets or another reference if asked. It refuses studies that were not measured
alike (corpus, evaluation, diagnostics and checkpoint grids, samples, CPU, threads per run) and a
recipe name that means two different recipes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import read_json
from textgan.studies.anchors import check_anchors
from textgan.studies.compare import check_new_folder, make_folder, write_report
from textgan.studies.report import (
    check_reference,
    check_targets,
    compare_recipes,
    compare_run,
    floors,
)

# What two studies must share for their runs to sit in one table.
SAME_SETTINGS = ("corpus", "eval_minutes", "diag_minutes", "ckpt_minutes", "eval_samples", "device")
SAME_MACHINE = ("cpu", "threads_per_run", "torch")
# Train fields that differ between the runs of one recipe: its seed, its folder, the schedule
# a study gives it (its budget, clock and, fitted or not, iterations) and its preset's name.
PER_RUN_FIELDS = {
    "seed",
    "run_dir",
    "name",
    "preset",
    "iters",
    "fit_iters",
    "max_minutes",
    "eval_minutes",
    "diag_minutes",
    "ckpt_minutes",
}


def load_study(folder: Path) -> dict[str, Any]:
    """The ``study.json`` of a ``textgan study compare`` folder."""
    result = read_json(folder / "study.json", "study file")
    if result.get("study") != "compare":
        raise UserError(
            f"{folder} is not a time-to-quality study (its study.json was not written by "
            "textgan study compare); give the folders of compare studies"
        )
    return result


def _check_alike(studies: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    (first_path, first), rest = studies[0], studies[1:]
    for path, other in rest:
        for section, keys in (("settings", SAME_SETTINGS), ("machine", SAME_MACHINE)):
            for key in keys:
                if first[section].get(key) != other[section].get(key):
                    raise UserError(
                        f"studies {first_path} and {path} differ in {key} "
                        f"({first[section].get(key)!r} against {other[section].get(key)!r}); "
                        "only studies measured alike share a table"
                    )


def _trained(folder: Path, study: dict[str, Any], name: str) -> dict[str, Any] | None:
    """What recipe ``name`` trained in a study, from its first run's config.json, less what
    differs run by run (None when no run of it started)."""
    for run in study["runs"]:
        config = folder / run["run"] / "config.json"
        if run["recipe"] == name and config.is_file():
            trained = read_json(config, "run config")
            trained["train"] = {
                k: v for k, v in trained["train"].items() if k not in PER_RUN_FIELDS
            }
            return {key: trained[key] for key in ("model", "lipschitz", "train")}
    return None


def _changed(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The first field two trained configs differ in, as ``section.field: a against b``."""
    for section, values in a.items():
        for key in sorted(values.keys() | b[section].keys()):
            if values.get(key) != b[section].get(key):
                return f"{section}.{key}: {values.get(key)!r} against {b[section].get(key)!r}"
    return "?"


def _recipes(studies: Sequence[tuple[Path, dict[str, Any]]]) -> dict[str, str]:
    """Every recipe by name, in order of appearance; a name must mean one recipe, trained on
    one schedule (its iterations fitted to the budget in every study or in none) with the same
    settings (a preset named in a spec may have changed between studies)."""
    recipes: dict[str, str] = {}
    fitted: dict[str, bool] = {}
    trained: dict[str, dict[str, Any]] = {}
    for path, study in studies:
        for name, spec in study["settings"]["recipes"].items():
            if recipes.setdefault(name, spec) != spec:
                raise UserError(
                    f"recipe {name} is {recipes[name]!r} in one study and {spec!r} in {path}; "
                    "a report cannot merge two recipes under one name"
                )
            # A study from before fitted schedules fitted none.
            fit = name in study["settings"].get("fit_iters", [])
            if fitted.setdefault(name, fit) != fit:
                raise UserError(
                    f"recipe {name} fitted its iterations to the budget in one study and not in "
                    f"{path}; a report cannot merge runs of two schedules under one name"
                )
            config = _trained(path, study, name)
            if config is not None and trained.setdefault(name, config) != config:
                raise UserError(
                    f"recipe {name} trained other settings in {path} "
                    f"({_changed(trained[name], config)}); a report cannot merge two recipes "
                    "under one name"
                )
    return recipes


def status_now(run_dir: Path, row: dict[str, Any], recorded: str, budget: float) -> str:
    """A run's status as it is now: ``ok`` once it has trained its study's budget (``budget``
    minutes) or its last iteration, as a resumed run may have since; else the one recorded."""
    config = run_dir / "config.json"  # absent when the run failed before it started
    iters = read_json(config, "run config")["train"]["iters"] if config.is_file() else None
    finished = iters is not None and row["iterations"] >= iters
    return "ok" if finished or (row["seconds"] or 0.0) >= 60 * budget else recorded


def _runs_at_once(studies: Sequence[tuple[Path, dict[str, Any]]]) -> int | str:
    counts = sorted({study["machine"]["runs_at_once"] for _, study in studies})
    return counts[0] if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _keep(recipes: dict[str, str], wanted: Sequence[str] | None) -> dict[str, str]:
    """The recipes named in ``wanted`` (all when None), in that order."""
    if wanted is None:
        return recipes
    unknown = [name for name in wanted if name not in recipes]
    if unknown:
        raise UserError(
            f"no recipe {', '.join(unknown)} in these studies; they have {', '.join(recipes)}"
        )
    return {name: recipes[name] for name in wanted}


def rebuild_report(
    sources: Sequence[str | Path],
    out: str | Path | None = None,
    targets: Sequence[float] | None = None,
    recipes: Sequence[str] | None = None,
    reference: str | None = None,
    anchors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Reread the runs of the compare studies ``sources`` and write their report to ``out``
    (default: the one source); ``targets``, ``reference`` and ``anchors`` (published curves
    drawn in the figure) default to the first study's, ``recipes`` (names) to all of them.
    Returns the report."""
    folders = [Path(s) for s in sources]
    if not folders:
        raise UserError("no study given; name at least one study folder")
    if out is None and len(folders) > 1:
        raise UserError("several studies need --out, a folder for their common report")
    out = Path(out) if out is not None else folders[0]
    if out not in folders:
        check_new_folder(out, "report folder")
    if targets is not None:
        check_targets(targets)
    if reference is not None:
        check_reference(reference)
    if anchors is not None:
        check_anchors(list(anchors))
    studies = [(folder, load_study(folder)) for folder in folders]
    _check_alike(studies)
    kept = _keep(_recipes(studies), recipes)
    first = studies[0][1]
    targets = list(targets) if targets is not None else list(first["settings"]["targets"])
    # A study from before the choice was measured against the training lines.
    reference = reference or first["settings"].get("reference", "train")
    anchors = list(anchors if anchors is not None else first["settings"].get("anchors", []))
    rows, run_dirs = [], []
    for folder, study in studies:
        for run in (r for r in study["runs"] if r["recipe"] in kept):
            run_dir = folder / run["run"]
            row = compare_run(
                run_dir, run["recipe"], run["seed"], run["status"], targets, reference
            )
            row["status"] = status_now(run_dir, row, run["status"], study["settings"]["minutes"])
            row["run"] = run["run"] if folder == out else os.path.relpath(run_dir, out)
            rows.append(row)
            run_dirs.append(run_dir)
    result = {
        **first,
        "out": str(out),
        "settings": {
            **first["settings"],
            "recipes": kept,
            "seeds": sorted({row["seed"] for row in rows}),
            "minutes": max(study["settings"]["minutes"] for _, study in studies),
            "targets": targets,
            "reference": reference,
            "anchors": anchors,
        },
        "machine": {**first["machine"], "runs_at_once": _runs_at_once(studies)},
        "ema": all(study["ema"] for _, study in studies),
        "floors": floors(run_dirs),
        "runs": rows,
        "recipes": compare_recipes(rows, list(kept)),
        "stopped_by": None,
        "sources": [str(folder) for folder in folders],
    }
    make_folder(out, "report folder")
    write_report(out, result)
    return result

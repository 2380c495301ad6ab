"""Conventions written as YAML: a preset name, a ``.yaml`` file, or a mapping of the axes (optionally
starting from a preset), read into a validated :class:`~grukit.derive.cell.convention.Convention`."""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from grukit.derive.cell.convention import (
    ARRANGEMENT_AXES,
    AXES,
    GATES,
    PARAMETER_AXES,
    Convention,
    ConventionError,
    Notation,
)
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import referenced_file
from grukit.derive.files.yaml_values import load_yaml, shown, to_number

CONVENTION_KEYS = ("name", "description", "source", "preset", "notation", *AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES)
CONVENTION_SUFFIXES = (".yaml", ".yml")

# --- conventions ------------------------------------------------------------------------------

def resolve_convention(spec, where: str, naming_file: Path) -> Convention:
    """A problem file's ``convention``: a preset name or a file name, an inline mapping, or ``{file:
    conv.yaml}``; a file is named beside ``naming_file`` (the problem's own file) and read only there
    (:func:`~grukit.derive.files.arrays.referenced_file`)."""
    if isinstance(spec, str):
        return named_convention(spec, where, naming_file)
    if not isinstance(spec, dict):
        raise GrukitError(f"{where}: expected a preset name or a mapping, got {shown(spec)}")
    if set(spec) == {"file"}:
        if not isinstance(spec["file"], str):
            raise GrukitError(f"{where}.file: expected a file name, got {shown(spec['file'])}")
        return convention_file(referenced_file(naming_file, spec["file"], f"{where}.file"))
    file, _, field = where.partition(": ")
    return convention_from_mapping(spec, file, field + ".", "custom")


def named_convention(text: str, where: str, naming_file: Path | None = None) -> Convention:
    """A preset name, or a convention file (``.yaml``/``.yml``): what the command line and problem
    files accept wherever they take a convention. A file named by a file (``naming_file``) is
    resolved beside it by :func:`~grukit.derive.files.arrays.referenced_file`; one given on the
    command line (no ``naming_file``) relative to the current folder."""
    if text in PRESETS:
        return PRESETS[text]
    if Path(text).suffix.lower() in CONVENTION_SUFFIXES:
        return convention_file(Path(text) if naming_file is None else referenced_file(naming_file, text, where))
    raise GrukitError(f"{where}: unknown convention {shown(text)} (presets: {', '.join(PRESETS)}; "
                      f"or a convention file ending in {' or '.join(CONVENTION_SUFFIXES)})")


def convention_file(path: Path) -> Convention:
    """A convention YAML file (a mapping of axes, optionally from a preset); its name defaults to the stem."""
    return convention_from_mapping(load_yaml(path), str(path), "", path.stem)


def convention_from_mapping(data, file: str, field: str, default_name: str) -> Convention:
    """A convention from its axes; errors read ``FILE: FIELD.axis: ...`` (FIELD empty for its own file)."""

    def at(sub: str) -> str:
        return f"{file}: {field}{sub}" if (field or sub) else file

    if not isinstance(data, dict):
        raise GrukitError(f"{at(field and field[:-1])}: expected a mapping of convention axes")
    unknown = sorted(set(map(str, data)) - set(CONVENTION_KEYS))
    if unknown:
        raise GrukitError(f"{at(unknown[0])}: unknown key (allowed: {', '.join(CONVENTION_KEYS)})")
    base = Convention(default_name)
    if "preset" in data:
        if not isinstance(data["preset"], str) or data["preset"] not in PRESETS:
            raise GrukitError(f"{at('preset')}: unknown convention {shown(data['preset'])}")
        base = PRESETS[data["preset"]]
    changes = {k: data[k] for k in (*AXES, *ARRANGEMENT_AXES) if k in data}
    for axis in AXES:
        if axis in changes and not isinstance(changes[axis], str):
            raise GrukitError(f"{at(axis)}: unknown value {shown(changes[axis])} (choose from "
                              f"{', '.join(AXES[axis])})")
    if "layout" in changes and changes["layout"] is not None and not isinstance(changes["layout"], str):
        raise GrukitError(f"{at('layout')}: expected a framework's name or none, got {shown(changes['layout'])}")
    if "gate_order" in changes:
        order = changes["gate_order"]
        if not isinstance(order, list) or not all(isinstance(g, str) for g in order):
            raise GrukitError(f"{at('gate_order')}: expected a list such as [z, r, h], got {shown(order)}")
        changes["gate_order"] = tuple(order)
    for key in PARAMETER_AXES:  # a number (read exactly) or none
        if key in data:
            changes[key] = None if data[key] is None else to_number(data[key], at(key))
    for key in ("name", "description", "source"):
        if key in data:
            changes[key] = str(data[key])
    changes.setdefault("name", default_name if "preset" not in data else f"{data['preset']}-custom")
    if "notation" in data:
        changes["notation"] = notation_from_mapping(data["notation"], at("notation"), base.notation)
    if "preset" in data and "description" not in data:
        changes["description"] = derived_description(data["preset"], base, changes)
    try:
        return base.with_changes(**changes)
    except ConventionError as exc:
        raise GrukitError(f"{at(str(exc))}") from None


def derived_description(preset: str, base: Convention, changes: dict) -> str:
    """What a convention built on a preset changed, e.g. ``The keras preset with update_rule =
    z_admits_new (h_t = (1 - z) * h_{t-1} + z * candidate)``; the preset's own description when
    it changed nothing."""
    parts = []
    for axis in (*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES):
        if axis in changes and changes[axis] != getattr(base, axis):
            value = changes[axis]
            shown = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            meaning = AXES.get(axis, {}).get(value)
            parts.append(f"{axis} = {shown}" + (f" ({meaning})" if meaning else ""))
    if "notation" in changes and changes["notation"] != base.notation:
        parts.append("its own notation")
    if not parts:
        return base.description
    return f"The {preset} preset with " + ("; ".join(parts[:-1]) + " and " if len(parts) > 1 else "") + parts[-1]


def notation_from_mapping(data, where: str, base: Notation) -> Notation:
    """A notation from a mapping of its fields, starting from ``base`` (``where`` names the mapping)."""
    if not isinstance(data, dict):
        raise GrukitError(f"{where}: expected a mapping")
    allowed = [f.name for f in fields(Notation) if f.name != "overrides"]
    changes = {}
    for key, value in data.items():
        if key not in allowed:
            raise GrukitError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        if key == "gate_letters":
            if not isinstance(value, dict) or set(value) != set(GATES):
                raise GrukitError(f"{where}.gate_letters: expected a mapping with keys z, r, h")
            value = tuple((g, str(value[g])) for g in GATES)
        elif not isinstance(value, str):
            raise GrukitError(f"{where}.{key}: expected text")
        changes[key] = value
    try:
        return replace(base, **changes)
    except ConventionError as exc:  # "notation.update_terms: ...": the field, under this file's prefix
        raise GrukitError(f"{where}{str(exc).removeprefix('notation')}") from None

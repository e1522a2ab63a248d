"""Settings of the main job: documented TOML defaults, user overrides, validation."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_NAME = "default_config.toml"
#: what ``[cluster] space`` may name -> how the HTML report describes it
CLUSTER_SPACES = {
    "report": "the joint image-text space of the image-to-text model (images grouped by what their reports say)",
    "image": "the CNN features of the embed step",
}


def default_config_text() -> str:
    """The default configuration file, comments included (what ``--print-config`` shows)."""
    return resources.files("radmine.pipeline").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def default_config() -> dict[str, dict[str, Any]]:
    """The default settings as a nested dict ``{section: {key: value}}``."""
    return tomllib.loads(default_config_text())


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Defaults, updated by a TOML/YAML file and by ``overrides`` (``{"topics.n_topics": 10}``).

    Unknown sections or keys raise ``ValueError`` naming the file and the key,
    so a typo never silently falls back to a default.
    """
    cfg = default_config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file {path} not found.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            user = yaml.safe_load(text) or {}
        else:
            try:
                user = tomllib.loads(text)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"Config file {path}: not valid TOML ({err}).") from None
        if not isinstance(user, dict):
            raise ValueError(f"Config file {path}: expected a table of sections, found {type(user).__name__}.")
        _merge(cfg, user, str(path))
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _merge(cfg, {section: {key: value}}, "overrides")
    return cfg


def _merge(cfg: dict, user: dict, where: str) -> None:
    for section, values in user.items():
        if section not in cfg:
            raise ValueError(f"{where}: unknown config section [{section}]; known: {sorted(cfg)}.")
        if not isinstance(values, dict):
            raise ValueError(f"{where}: [{section}] must be a table of settings, found {values!r}.")
        for key, value in values.items():
            if key not in cfg[section]:
                raise ValueError(
                    f"{where}: unknown setting {section}.{key}; known in [{section}]: {sorted(cfg[section])}."
                )
            default = cfg[section][key]
            if default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)
            ):
                raise ValueError(
                    f"{where}: {section}.{key} must be of type {type(default).__name__} "
                    f"(default {default!r}); found {value!r}."
                )
            cfg[section][key] = copy.deepcopy(value)

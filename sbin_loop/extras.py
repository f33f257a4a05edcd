"""Optional dependencies a campaign config needs, checked before a campaign directory is created.

The force-field and VASP oracles import atomate2, jobflow and the potential's package only when they build their
first job; without this check a campaign would create its directory, store and pool, and only then fail.
"""

from __future__ import annotations

import importlib.util

from sbin_loop.config import CampaignConfig, ConfigError
from sbin_loop.oracles.config import ForceFieldOracleConfig, VaspOracleConfig

FORCEFIELD_EXTRA = "pip install -e '.[forcefield]'"
"""How to install the packages the defect workflows need (from a checkout of sbin)."""

_WORKFLOW_MODULES = ("jobflow", "atomate2")
_POTENTIAL_MODULES = {"CHGNet": "chgnet"}
"""Module of each potential the ``forcefield`` extra installs; other potentials need their own package."""


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def required_modules(oracle: object) -> tuple[str, ...]:
    """Modules an oracle's settings need beyond sbin's own dependencies (none for most oracles)."""
    if isinstance(oracle, ForceFieldOracleConfig):
        potential = _POTENTIAL_MODULES.get(oracle.force_field)
        return (*_WORKFLOW_MODULES, *([potential] if potential else []))
    if isinstance(oracle, VaspOracleConfig):
        return _WORKFLOW_MODULES
    return ()


def require_extras(config: CampaignConfig) -> None:
    """Refuse a config whose oracles need packages that are not installed.

    Raises:
        ConfigError: Naming the oracle, the missing modules and the extra that installs them.
    """
    for position, oracle in enumerate(config.oracles):
        missing = [module for module in required_modules(oracle) if _missing(module)]
        if missing:
            raise ConfigError(
                f"oracles.{position}: the {oracle.kind} oracle needs {', '.join(missing)}, which is not installed; "
                f"install the forcefield extra: {FORCEFIELD_EXTRA}"
            )

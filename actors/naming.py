"""Names of the engine's actors in the Ray namespace (``lts`` by default), in one place
so the CLI, the API's engine client and the Ray dashboard all find the same actors."""

from __future__ import annotations

from typing import Any

BROKER = "broker"
PERSISTENCE = "persistence"
PREDICTION = "prediction"


def portfolio_supervisor(portfolio_id: Any) -> str:
    """``portfolio:{id}``: the supervisor of one active portfolio."""
    return f"portfolio:{portfolio_id}"


def asset(asset_id: Any) -> str:
    """``asset:{id}``: the actor running one active asset's steps."""
    return f"asset:{asset_id}"


def strategy(key: str) -> str:
    """``strategy:{plugin}:{config hash}``: a strategy actor shared by equal configs."""
    return f"strategy:{key}"

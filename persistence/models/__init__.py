"""All ORM models. Importing this package registers every table on ``Base.metadata``."""

from persistence.models.accounting import BillingRecord, ConfigEntry, Statistic
from persistence.models.audit import AuditLog
from persistence.models.backtests import BacktestResult, BacktestRun
from persistence.models.portfolios import Asset, Portfolio
from persistence.models.trading import Order, Position
from persistence.models.users import LoginFailure, User, UserSession

__all__ = [
    "Asset",
    "AuditLog",
    "BacktestResult",
    "BacktestRun",
    "BillingRecord",
    "ConfigEntry",
    "LoginFailure",
    "Order",
    "Portfolio",
    "Position",
    "Statistic",
    "User",
    "UserSession",
]

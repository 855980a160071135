"""The supervisor's default step window (``actors.supervisor.default_steps_in_flight``)
and the validation of ``max_steps_in_flight`` (``actors.runtime_settings``)."""

from __future__ import annotations

import pytest

from actors.runtime_settings import RuntimeSettings, check_steps_in_flight
from actors.supervisor import default_steps_in_flight, steps_in_flight
from engine.errors import ConfigError


def test_two_steps_per_cpu_of_the_cluster() -> None:
    assert default_steps_in_flight(cluster_cpus=2) == 4
    assert default_steps_in_flight(cluster_cpus=16) == 32
    assert default_steps_in_flight(cluster_cpus=64) == 128  # four 16-core nodes


def test_the_window_is_never_below_four() -> None:
    assert default_steps_in_flight(cluster_cpus=1) == 4
    assert default_steps_in_flight(cluster_cpus=0) == 4


def test_an_explicit_setting_wins_and_bad_values_name_the_key() -> None:
    assert steps_in_flight(RuntimeSettings.from_config({"max_steps_in_flight": 3})) == 3
    assert steps_in_flight(RuntimeSettings.from_config({"max_steps_in_flight": 0})) == 0  # no limit
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(ConfigError, match="max_steps_in_flight"):
            check_steps_in_flight(bad)
        with pytest.raises(ConfigError, match="max_steps_in_flight"):
            RuntimeSettings.from_config({"max_steps_in_flight": bad})

"""The supervisor's default step window (``actors.supervisor.default_steps_in_flight``)
and the validation of ``max_steps_in_flight``."""

from __future__ import annotations

import pytest

from actors.supervisor import check_steps_in_flight, default_steps_in_flight, steps_in_flight
from engine.errors import ConfigError


def test_declared_cpus_beyond_the_cores_do_not_widen_the_window():
    # `lts run` on a 2-core machine declares 4 CPUs: the window follows the 2 cores.
    assert default_steps_in_flight(cluster_cpus=4, cores_per_node=2, nodes=1) == 5
    assert default_steps_in_flight(cluster_cpus=18, cores_per_node=16, nodes=1) == 33


def test_a_cluster_counts_every_node_and_a_smaller_declaration_wins():
    assert default_steps_in_flight(cluster_cpus=64, cores_per_node=16, nodes=4) == 129
    assert default_steps_in_flight(cluster_cpus=6, cores_per_node=16, nodes=2) == 13


def test_the_window_is_never_below_four():
    assert default_steps_in_flight(cluster_cpus=1, cores_per_node=1, nodes=1) == 4
    assert default_steps_in_flight(cluster_cpus=0, cores_per_node=0, nodes=0) == 4


def test_an_explicit_setting_wins_and_bad_values_name_the_key():
    assert steps_in_flight({"max_steps_in_flight": 3}) == 3
    assert steps_in_flight({"max_steps_in_flight": 0}) == 0  # no limit
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(ConfigError, match="max_steps_in_flight"):
            check_steps_in_flight(bad)

"""The stored seed sweeps: each one was made by the code that defines it now."""

import dataclasses
import json

import pytest

from minids import experiments
from tests.chapters import REPO

STORED = [sweep for sweep, file in experiments.FILES.items() if (REPO / "data" / file).exists()]


@pytest.mark.parametrize("sweep", [sweep for sweep in STORED if sweep in experiments.CONTENDERS])
def test_a_stored_sweep_holds_every_contender_and_seed_of_its_definition(sweep):
    record = experiments.load(sweep, REPO / "data")
    assert record["command"] == f"python -m minids.experiments {sweep}"
    training = experiments.TRAININGS[sweep]
    assert record["train_config"] == json.loads(json.dumps(dataclasses.asdict(training)))
    assert record.get("train_changes", {}) == experiments.TRAINING_CHANGES.get(sweep, {})
    assert record["seeds"] == list(experiments.SEEDS)
    for name in experiments.CONTENDERS[sweep]:
        assert record["model_configs"][name] == experiments.contender_config(sweep, name).to_dict()
        for seed in experiments.SEEDS:
            run = record["runs"][name][str(seed)]
            assert len(run["train_loss"]) == training.steps
            assert run["val_loss"][-1][0] == training.steps


def test_every_sweep_a_chapter_reads_is_stored():
    assert set(STORED) == set(experiments.FILES)


def test_the_stored_balancing_sweep_holds_every_run_and_seed_of_its_definition():
    record = experiments.load("load_balancing", REPO / "data")
    assert record["command"] == "python -m minids.experiments load_balancing"
    assert record["balancing"] == {name: list(run) for name, run in experiments.BALANCING.items()}
    assert record["steps"] == experiments.BALANCE_STEPS
    assert record["seeds"] == list(experiments.SEEDS)
    for name in experiments.BALANCING:
        for seed in experiments.SEEDS:
            run = record["runs"][name][str(seed)]
            assert len(run["max_vio"]) == experiments.BALANCE_STEPS
            assert len(run["val_load"]) == experiments.balance_config(0, 0).n_routed_experts


def test_a_missing_sweep_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m minids.experiments attention"):
        experiments.load("attention", tmp_path)

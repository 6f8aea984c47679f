"""HyperDrive sweeps against a real daemon: azureml's "tune hyperparameters" snippet with the
imports changed (random sampling, a Bandit policy stopping bad children, the best run found),
a grid sweep, and a daemon killed with SIGKILL mid-sweep that finishes with exactly
max_total_runs children."""

import math
import os
import shutil
import signal
import tempfile

import pytest

from conftest import Daemon, wait_until, write_script

# The loss of a child falls with the steps and is lowest for lr = 0.01: the
# child whose lr is closest to 0.01 (in log scale) is best at every step.
TRAIN = """
import argparse, math, time
from amld.core import Run
parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--steps", type=int, default=8)
args = parser.parse_args()
run = Run.get_context()
for step in range(1, args.steps + 1):
    run.log("loss", (math.log10(args.learning_rate) + 2) ** 2 + 1.0 / step)
    time.sleep(%s)
print("done", args.learning_rate, args.batch_size)
"""


def train_script(project, sleep=0.25):
    write_script(project, "train.py", TRAIN % sleep)


def test_random_sweep_with_bandit_finds_the_best_run(ws, project):
    from amld.core import Experiment, Run, ScriptRunConfig
    from amld.train.hyperdrive import (
        BanditPolicy, HyperDriveConfig, HyperDriveRun, PrimaryMetricGoal,
        RandomParameterSampling, choice, loguniform)
    train_script(project)
    src = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--steps", 8])
    param_sampling = RandomParameterSampling({
        "learning_rate": loguniform(math.log(1e-4), math.log(1.0)),
        "batch_size": choice(16, 32, 64, 128),
    }, properties={"seed": 7})
    early_termination_policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1,
                                            delay_evaluation=3)
    hd_config = HyperDriveConfig(run_config=src,
                                 hyperparameter_sampling=param_sampling,
                                 policy=early_termination_policy,
                                 primary_metric_name="loss",
                                 primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                                 max_total_runs=12,
                                 max_concurrent_runs=2)
    hyperdrive_run = Experiment(ws, "tune").submit(hd_config)
    assert isinstance(hyperdrive_run, HyperDriveRun)
    details = hyperdrive_run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"

    children = list(hyperdrive_run.get_children())
    assert len(children) == 12
    assert sorted(c.id for c in children) == sorted(
        "%s_%d" % (hyperdrive_run.id, i) for i in range(12))
    statuses = {c.id: c.get_status() for c in children}
    stopped = [c for c in children if statuses[c.id] == "Canceled"]
    assert stopped, "the Bandit policy stopped no child: %s" % statuses
    for c in stopped:
        error = c.get_details()["error"]["error"]["message"]
        assert "BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=3)" in error
    assert all(s in ("Completed", "Canceled") for s in statuses.values())
    assert children[0].parent.id == hyperdrive_run.id
    assert isinstance(Run.get(ws, hyperdrive_run.id), HyperDriveRun)

    # The best run is the child whose learning rate is closest to 0.01.
    hyperparameters = hyperdrive_run.get_hyperparameters()
    assert len(hyperparameters) == 12

    def lr_of(run_id):
        args = Run.get(ws, run_id).get_details()["runDefinition"]["arguments"]
        return float(args[args.index("--learning_rate") + 1])

    closest = min(children, key=lambda c: abs(math.log10(lr_of(c.id)) + 2))
    best_run = hyperdrive_run.get_best_run_by_primary_metric()
    assert best_run.id == closest.id
    ranked = hyperdrive_run.get_children_sorted_by_primary_metric(top=3)
    assert len(ranked) == 3 and ranked[0]["run_id"] == best_run.id
    assert ranked[0]["best_primary_metric"] <= ranked[1]["best_primary_metric"]
    metrics = hyperdrive_run.get_metrics()
    assert set(metrics) == {c.id for c in children}
    assert min(metrics[best_run.id]["loss"]) == ranked[0]["best_primary_metric"]
    # The arguments as azureml passes them: the script's, then --name value.
    args = best_run.get_details()["runDefinition"]["arguments"]
    assert args[:2] == ["--steps", "8"] and "--batch_size" in args


def test_grid_sweep_runs_every_combination(ws, project):
    from amld.core import Experiment, ScriptRunConfig
    from amld.train.hyperdrive import (
        GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice)
    train_script(project, sleep=0)
    src = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--steps", 2])
    hd = HyperDriveConfig(run_config=src,
                          hyperparameter_sampling=GridParameterSampling({
                              "--learning_rate": choice(0.1, 0.01),
                              "--batch_size": choice(16, 32)}),
                          primary_metric_name="loss",
                          primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                          max_concurrent_runs=4)
    run = Experiment(ws, "grid").submit(hd)
    run.wait_for_completion()
    grid = sorted(run.get_hyperparameters().values())
    assert grid == sorted([
        '{"--learning_rate": 0.1, "--batch_size": 16}', '{"--learning_rate": 0.1, "--batch_size": 32}',
        '{"--learning_rate": 0.01, "--batch_size": 16}', '{"--learning_rate": 0.01, "--batch_size": 32}'])
    best = run.get_best_run_by_primary_metric()
    assert '"--learning_rate": 0.01' in best.get_tags()["hyperparameters"]


def test_bad_sweeps_are_refused_before_anything_runs(ws, project):
    from amld.core import Experiment, ScriptRunConfig
    from amld.exceptions import UserErrorException
    from amld.train.hyperdrive import (
        BanditPolicy, BayesianParameterSampling, GridParameterSampling, HyperDriveConfig,
        PrimaryMetricGoal, choice, uniform)
    train_script(project, sleep=0)
    src = ScriptRunConfig(source_directory=".", script="train.py")
    with pytest.raises(UserErrorException, match="choice"):
        GridParameterSampling({"lr": uniform(0, 1)})
    with pytest.raises(UserErrorException, match="early termination"):
        HyperDriveConfig(run_config=src, primary_metric_name="loss",
                         primary_metric_goal=PrimaryMetricGoal.MINIMIZE, max_total_runs=2,
                         hyperparameter_sampling=BayesianParameterSampling({"lr": uniform(0, 1)}),
                         policy=BanditPolicy(slack_factor=0.1))
    # The daemon's own check, with its message.
    hd = HyperDriveConfig(run_config=src, primary_metric_name="loss",
                          primary_metric_goal=PrimaryMetricGoal.MINIMIZE, max_total_runs=5,
                          hyperparameter_sampling=GridParameterSampling({"lr": choice(1, 2)}))
    with pytest.raises(UserErrorException, match="more than the grid's 2 combinations"):
        Experiment(ws, "refused").submit(hd)


def test_a_sweep_survives_kill_9_of_the_daemon(project):
    from amld.core import Experiment, ScriptRunConfig, Workspace
    from amld.train.hyperdrive import (
        HyperDriveConfig, PrimaryMetricGoal, RandomParameterSampling, uniform)
    root = tempfile.mkdtemp(prefix="amldkill.", dir="/tmp")
    d = Daemon(root)
    try:
        d.start()
        ws = Workspace(d.socket)
        train_script(project, sleep=0.2)
        src = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--steps", 4])
        hd = HyperDriveConfig(run_config=src, primary_metric_name="loss",
                              primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                              hyperparameter_sampling=RandomParameterSampling(
                                  {"--learning_rate": uniform(0.001, 0.1)}),
                              max_total_runs=6, max_concurrent_runs=2)
        sweep = Experiment(ws, "killed").submit(hd)
        wait_until(lambda: sum(c.get_status() == "Completed" for c in sweep.get_children()) >= 2,
                   "two children to complete")
        d.process.send_signal(signal.SIGKILL)
        d.process.wait()
        d.start()
        details = sweep.wait_for_completion()
        assert details["status"] == "Completed"
        children = list(sweep.get_children())
        assert sorted(c.id for c in children) == sorted("%s_%d" % (sweep.id, i)
                                                        for i in range(6))
        # A child the kill caught between STARTING and its handle being
        # recorded is FAILED by recovery, never launched twice (ARCHITECTURE,
        # "What the daemon checks at start": recovery.cc's DecideRecovery says
        # which of its two messages); every other child completes.
        lost = ("daemon lost the run", "the daemon stopped while starting this run")
        for c in children:
            run = c._fetch()
            assert c.get_status() == "Completed" or (
                c.get_status() == "Failed" and run.error.startswith(lost)), (
                c.id, c.get_status(), run.error)
        assert len(set(sweep.get_hyperparameters().values())) == 6
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


# The training script of azureml's "tune hyperparameters" article (v1): its
# three arguments and `run_logger.log("accuracy", ...)`, import changed. The
# accuracy rises with the epochs and is highest for learning_rate 10 and
# keep_probability 0.1, so the best child is known from its arguments.
ARTICLE_TRAIN = """
import argparse, time
from amld.core.run import Run
parser = argparse.ArgumentParser()
parser.add_argument("--data-folder", type=str)
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--keep_probability", type=float)
parser.add_argument("--batch_size", type=int)
args = parser.parse_args()
run_logger = Run.get_context()
for epoch in range(1, 9):
    val_accuracy = (1 - min(abs(args.learning_rate - 10) / 20, 0.9)) * (
        args.keep_probability * 10) * epoch / 8 - args.batch_size * 1e-6
    run_logger.log("accuracy", float(val_accuracy))
    time.sleep(0.1)
"""


def article_accuracy(learning_rate, keep_probability, batch_size):
    return (1 - min(abs(learning_rate - 10) / 20, 0.9)) * (keep_probability * 10) \
        - batch_size * 1e-6


def test_the_tune_hyperparameters_article_snippet(ws, project):
    """The article's cells in order, imports changed; only max_total_runs is
    smaller (8, not 100) so the test stays short."""
    write_script(project, "train.py", ARTICLE_TRAIN)
    project_folder = "."
    compute_target = "local"
    workspace = ws
    experiment_name = "hyperdrive-article"

    from amld.train.hyperdrive import RandomParameterSampling
    from amld.train.hyperdrive import normal, uniform, choice
    param_sampling = RandomParameterSampling( {
            "learning_rate": normal(10, 3),
            "keep_probability": uniform(0.05, 0.1),
            "batch_size": choice(16, 32, 64, 128)
        }
    )

    from amld.train.hyperdrive import BanditPolicy
    early_termination_policy = BanditPolicy(slack_factor = 0.1, evaluation_interval=1,
                                            delay_evaluation=5)

    from amld.core import ScriptRunConfig
    src = ScriptRunConfig(source_directory=project_folder,
                          script='train.py',
                          arguments=['--data-folder', '/tmp/data'],
                          compute_target=compute_target)

    from amld.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal
    hd_config = HyperDriveConfig(run_config=src,
                                 hyperparameter_sampling=param_sampling,
                                 policy=early_termination_policy,
                                 primary_metric_name="accuracy",
                                 primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                                 max_total_runs=8,
                                 max_concurrent_runs=4)

    from amld.core.experiment import Experiment
    experiment = Experiment(workspace, experiment_name)
    hyperdrive_run = experiment.submit(hd_config)
    hyperdrive_run.wait_for_completion(show_output=True)

    best_run = hyperdrive_run.get_best_run_by_primary_metric()
    best_run_metrics = best_run.get_metrics()
    parameter_values = best_run.get_details()['runDefinition']['arguments']
    print('Best Run Id: ', best_run.id)
    print('\n Accuracy:', best_run_metrics['accuracy'])
    print('\n learning rate:', parameter_values[3])
    print('\n keep probability:', parameter_values[5])
    print('\n batch size:', parameter_values[7])

    # The article's indexes land on the sampled values, after the script's own
    # arguments, in the order of the parameter space.
    assert parameter_values[:2] == ['--data-folder', '/tmp/data']
    assert parameter_values[2::2] == ['--learning_rate', '--keep_probability', '--batch_size']

    def sampled(run):
        args = run.get_details()['runDefinition']['arguments']
        return float(args[3]), float(args[5]), int(args[7])

    children = list(hyperdrive_run.get_children())
    assert len(children) == 8
    expected = max(children, key=lambda c: article_accuracy(*sampled(c)))
    assert best_run.id == expected.id
    assert best_run.get_status() == "Completed"
    assert best_run_metrics['accuracy'][-1] == pytest.approx(article_accuracy(*sampled(best_run)))

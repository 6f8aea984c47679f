"""The seed article's code ("Configure and submit training runs", Azure ML SDK v1) runs on amld.

The body of the test is the article's snippets in order, with only the
import lines changed (``azureml.core`` → ``amld.core``). What the article
leaves to the reader is set up around them: the workspace config
(``.amld/config.json``, in the project fixture), ``project_folder`` with the
training script (examples/logistic-regression/train.py, which logs loss and
accuracy per epoch with Run.get_context().log), and ``my_compute_target``.
"""

import json
import os
import shutil

from conftest import SOURCE_DIR


def test_seed_article_snippets_run_against_a_real_daemon(project, daemon, capsys):
    project_folder = str(project)
    shutil.copy(os.path.join(SOURCE_DIR, "examples", "logistic-regression", "train.py"),
                project_folder)
    my_compute_target = "local"
    arg1_val, arg2_val = 5, 0.5

    # --- the article's snippets, in order ------------------------------------
    from amld.core import Workspace, Environment

    ws = Workspace.from_config()
    myenv = Environment.get(workspace=ws, name="AzureML-Minimal")

    from amld.core import Experiment

    experiment_name = 'my_experiment'
    experiment = Experiment(workspace=ws, name=experiment_name)

    from amld.core import Environment

    myenv = Environment("user-managed-env")
    myenv.python.user_managed_dependencies = True

    # You can choose a specific Python environment by pointing to a Python path
    # myenv.python.interpreter_path = '/home/johndoe/miniconda3/envs/myenv/bin/python'

    from amld.core import ScriptRunConfig

    src = ScriptRunConfig(source_directory=project_folder,
                          script='train.py',
                          arguments=['--epochs', arg1_val, '--learning-rate', arg2_val],
                          compute_target=my_compute_target,
                          environment=myenv,
                          max_run_duration_seconds=600)

    run = experiment.submit(config=src)
    run.wait_for_completion(show_output=True)

    run.download_file(name='outputs/model.json', output_file_path='my_destination_path')
    # -------------------------------------------------------------------------

    shown = capsys.readouterr().out
    assert "RunId: " + run.id in shown
    for epoch in range(1, 6):
        assert "epoch %3d  loss" % epoch in shown
    assert "wrote outputs/model.json" in shown
    assert "Execution Summary" in shown and "Status: Completed" in shown

    assert run.get_status() == "Completed"
    with open(os.path.join(project_folder, "my_destination_path")) as f:
        model = json.load(f)
    assert model["epochs"] == 5
    assert model["final_accuracy"] > 0.8

    details = run.get_details()
    assert details["runDefinition"]["arguments"] == ["--epochs", "5", "--learning-rate", "0.5"]
    assert details["runDefinition"]["maxRunDurationSeconds"] == 600
    assert details["runDefinition"]["environment"]["name"] == "user-managed-env"
    assert details["target"] == "local"
    assert details["experiment"] == "my_experiment"
    assert "user_logs/std_log.txt" in details["logFiles"]

    # The script logged a metric per epoch through Run.get_context().log:
    # one JSON line per value in the run's AMLD_METRICS_FILE ...
    with open(os.path.join(daemon.run_dir(run.id), "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    losses = [line for line in lines if line["name"] == "loss"]
    assert [line["step"] for line in losses] == [1, 2, 3, 4, 5]
    assert all(isinstance(line["value"], float) and "time" in line for line in losses)
    # ... which the daemon serves through GetMetrics.
    metrics = run.get_metrics()
    assert len(metrics["loss"]) == 5 and len(metrics["accuracy"]) == 5
    assert metrics["loss"] == [line["value"] for line in losses]
    assert metrics["loss"][-1] < metrics["loss"][0]

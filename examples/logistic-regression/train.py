"""Logistic regression in plain Python: the example training run of amld.

Trains on a synthetic, seeded two-class dataset, prints progress per epoch,
writes the model to ./outputs/model.json and a training log to ./logs/,
and logs loss and accuracy per epoch: with amld's SDK when it can be imported
(Run.get_context().log, as with azureml.core), else straight to
AMLD_METRICS_FILE when run under amld. No third-party packages: it runs with
any python3.
"""
import argparse
import json
import math
import os
import random
import time

try:
    from amld.core import Run
except ImportError:  # the SDK is not installed: amld still reads AMLD_METRICS_FILE
    Run = None


def make_dataset(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.random() < 0.5
        cx, cy = (1.5, 1.0) if label else (-1.0, -1.5)
        rows.append(((rng.gauss(cx, 1.0), rng.gauss(cy, 1.0)), 1.0 if label else 0.0))
    return rows


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def log_metric(name, value, step):
    if Run is not None:
        Run.get_context().log(name, value, step=step)
        return
    path = os.environ.get("AMLD_METRICS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "value": value, "step": step,
                                "time": time.time()}) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"run {os.environ.get('AMLD_RUN_ID', '(offline)')}: "
          f"{args.samples} samples, {args.epochs} epochs, lr={args.learning_rate}")
    data = make_dataset(args.samples, args.seed)
    w = [0.0, 0.0]
    b = 0.0
    os.makedirs("outputs", exist_ok=True)
    os.makedirs("logs", exist_ok=True)
    with open("logs/train.log", "w") as log:
        for epoch in range(1, args.epochs + 1):
            loss = 0.0
            correct = 0
            gw = [0.0, 0.0]
            gb = 0.0
            for (x0, x1), y in data:
                p = sigmoid(w[0] * x0 + w[1] * x1 + b)
                loss -= y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12)
                correct += (p >= 0.5) == (y == 1.0)
                gw[0] += (p - y) * x0
                gw[1] += (p - y) * x1
                gb += p - y
            n = len(data)
            w = [w[0] - args.learning_rate * gw[0] / n, w[1] - args.learning_rate * gw[1] / n]
            b -= args.learning_rate * gb / n
            accuracy = correct / n
            line = f"epoch {epoch:3d}  loss {loss / n:.4f}  accuracy {accuracy:.4f}"
            print(line)
            log.write(line + "\n")
            log_metric("loss", loss / n, epoch)
            log_metric("accuracy", accuracy, epoch)

    with open("outputs/model.json", "w") as f:
        json.dump({"weights": w, "bias": b, "epochs": args.epochs,
                   "final_accuracy": accuracy}, f, indent=2)
    print("wrote outputs/model.json")


if __name__ == "__main__":
    main()

"""Early termination policies (azureml.train.hyperdrive.policy).

An interval is one logged value of the primary metric; a policy is applied
at every multiple of ``evaluation_interval`` that is at least
``delay_evaluation``. A child it stops ends CANCELED, the policy named in
its error.
"""

from amld.exceptions import UserErrorException


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserErrorException("%s must be an integer >= 0, got %r" % (what, value))
    return value


class EarlyTerminationPolicy:
    """The base of the policies."""

    def __init__(self, name, properties=None):
        """A policy ``name`` with its ``properties``."""
        self._name = name
        self._properties = dict(properties or {})

    def to_json(self):
        """The policy as a dict (name and properties)."""
        return {"name": self._name, "properties": self._properties}

    def _to_proto(self, spec):
        pass


class NoTerminationPolicy(EarlyTerminationPolicy):
    """No child is stopped early."""

    def __init__(self):
        """No early termination."""
        super().__init__("Default")


class BanditPolicy(EarlyTerminationPolicy):
    """Stops a child whose metric is not within the slack of the best child's at an interval.

    :param slack_factor: the allowed distance as a ratio of the best value.
    :param slack_amount: the allowed distance as an absolute amount.
    :param evaluation_interval: how often the policy is applied (intervals).
    :param delay_evaluation: the first interval it may be applied at.
    """

    def __init__(self, evaluation_interval=1, slack_factor=None, slack_amount=None,
                 delay_evaluation=0):
        """Exactly one of slack_factor and slack_amount."""
        if (slack_factor is None) == (slack_amount is None):
            raise UserErrorException("BanditPolicy: give exactly one of slack_factor and "
                                     "slack_amount")
        super().__init__("Bandit", {
            "evaluation_interval": _count(evaluation_interval, "evaluation_interval"),
            "delay_evaluation": _count(delay_evaluation, "delay_evaluation"),
            "slack_factor": slack_factor, "slack_amount": slack_amount})

    @property
    def slack_factor(self):
        """The allowed distance as a ratio, or None."""
        return self._properties["slack_factor"]

    @property
    def slack_amount(self):
        """The allowed distance as an absolute amount, or None."""
        return self._properties["slack_amount"]

    def _to_proto(self, spec):
        p = self._properties
        spec.policy.bandit.evaluation_interval = p["evaluation_interval"]
        spec.policy.bandit.delay_evaluation = p["delay_evaluation"]
        if p["slack_factor"] is not None:
            spec.policy.bandit.slack_factor = float(p["slack_factor"])
        else:
            spec.policy.bandit.slack_amount = float(p["slack_amount"])


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Stops a child whose best metric is worse than the median of the others' running averages.

    :param evaluation_interval: how often the policy is applied (intervals).
    :param delay_evaluation: the first interval it may be applied at.
    """

    def __init__(self, evaluation_interval=1, delay_evaluation=0):
        """Median stopping."""
        super().__init__("MedianStopping", {
            "evaluation_interval": _count(evaluation_interval, "evaluation_interval"),
            "delay_evaluation": _count(delay_evaluation, "delay_evaluation")})

    def _to_proto(self, spec):
        spec.policy.median_stopping.evaluation_interval = self._properties["evaluation_interval"]
        spec.policy.median_stopping.delay_evaluation = self._properties["delay_evaluation"]


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Stops the lowest ``truncation_percentage`` percent of the children at each evaluation.

    :param truncation_percentage: 1 to 99.
    :param evaluation_interval: how often the policy is applied (intervals).
    :param delay_evaluation: the first interval it may be applied at.
    """

    def __init__(self, truncation_percentage, evaluation_interval=1, delay_evaluation=0):
        """Truncation selection."""
        super().__init__("TruncationSelection", {
            "truncation_percentage": _count(truncation_percentage, "truncation_percentage"),
            "evaluation_interval": _count(evaluation_interval, "evaluation_interval"),
            "delay_evaluation": _count(delay_evaluation, "delay_evaluation")})

    def _to_proto(self, spec):
        t = spec.policy.truncation_selection
        t.truncation_percentage = self._properties["truncation_percentage"]
        t.evaluation_interval = self._properties["evaluation_interval"]
        t.delay_evaluation = self._properties["delay_evaluation"]

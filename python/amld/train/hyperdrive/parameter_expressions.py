"""Parameter expressions of a search space (azureml.train.hyperdrive.parameter_expressions).

Each function returns the expression as azureml does, a list
``[name, [arguments]]``; the daemon draws the values.
"""

from amld.exceptions import UserErrorException


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserErrorException("%s must be a number, got %r" % (what, value))
    return value


def choice(*options):
    """One of ``options``: ``choice(16, 32, 64)`` or ``choice([16, 32, 64])`` (or a range)."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    if not options:
        raise UserErrorException("choice() needs at least one option")
    for option in options:
        if not isinstance(option, (str, int, float)):
            raise UserErrorException("choice options must be numbers or strings, got %r"
                                     % (option,))
    return ["choice", [list(options)]]


def randint(upper):
    """An integer in [0, upper)."""
    return ["randint", [_number(upper, "randint upper")]]


def uniform(min_value, max_value):
    """A value uniformly distributed between min_value and max_value."""
    return ["uniform", [_number(min_value, "min_value"), _number(max_value, "max_value")]]


def quniform(min_value, max_value, q):
    """round(uniform(min_value, max_value) / q) * q."""
    return ["quniform", [_number(min_value, "min_value"), _number(max_value, "max_value"),
                         _number(q, "q")]]


def loguniform(min_value, max_value):
    """exp(uniform(min_value, max_value)): the logarithm is uniformly distributed."""
    return ["loguniform", [_number(min_value, "min_value"), _number(max_value, "max_value")]]


def qloguniform(min_value, max_value, q):
    """round(exp(uniform(min_value, max_value)) / q) * q."""
    return ["qloguniform", [_number(min_value, "min_value"), _number(max_value, "max_value"),
                            _number(q, "q")]]


def normal(mu, sigma):
    """A real value normally distributed with mean mu and standard deviation sigma."""
    return ["normal", [_number(mu, "mu"), _number(sigma, "sigma")]]


def qnormal(mu, sigma, q):
    """round(normal(mu, sigma) / q) * q."""
    return ["qnormal", [_number(mu, "mu"), _number(sigma, "sigma"), _number(q, "q")]]


def lognormal(mu, sigma):
    """exp(normal(mu, sigma)): the logarithm is normally distributed."""
    return ["lognormal", [_number(mu, "mu"), _number(sigma, "sigma")]]


def qlognormal(mu, sigma, q):
    """round(exp(normal(mu, sigma)) / q) * q."""
    return ["qlognormal", [_number(mu, "mu"), _number(sigma, "sigma"), _number(q, "q")]]

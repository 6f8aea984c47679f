"""How a search space is sampled (azureml.train.hyperdrive.sampling)."""

from amld.exceptions import UnsupportedOptionError, UserErrorException


class HyperParameterSampling:
    """The base of the samplers: a parameter space, a dict name → parameter expression.

    :param sampling_method_name: "RANDOM", "GRID" or "BAYESIAN".
    :param parameter_space: ``{"--learning_rate": uniform(0.001, 0.1), ...}``; each
        child gets ``--learning_rate VALUE`` appended to its arguments.
    :param properties: settings of the algorithm (``{"seed": 42}`` for random).
    """

    def __init__(self, sampling_method_name, parameter_space, properties=None,
                 supported_distributions=None):
        """Check the space's shape; the daemon checks its values."""
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise UserErrorException("parameter_space must be a non-empty dict of name → "
                                     "expression, e.g. {'--lr': uniform(0.001, 0.1)}")
        for name, expression in parameter_space.items():
            if (not isinstance(name, str) or not isinstance(expression, list)
                    or len(expression) != 2 or not isinstance(expression[0], str)):
                raise UserErrorException("parameter %r: use an expression of "
                                         "amld.train.hyperdrive (choice, uniform, ...)" % (name,))
            if supported_distributions and expression[0] not in supported_distributions:
                raise UserErrorException(
                    "%s sampling takes %s parameters only; %s is %s()"
                    % (sampling_method_name.capitalize(), ", ".join(supported_distributions),
                       name, expression[0]))
        self._sampling_method_name = sampling_method_name
        self._parameter_space = dict(parameter_space)
        self._properties = dict(properties or {})

    @property
    def parameter_space(self):
        """The parameter space, a dict name → expression."""
        return self._parameter_space

    def to_json(self):
        """The sampling as a dict (name, parameter_space, properties)."""
        return {"name": self._sampling_method_name, "parameter_space": self._parameter_space,
                "properties": self._properties}

    def _to_proto(self, spec):
        from amld.v1 import sweep_pb2
        spec.sampling = getattr(sweep_pb2.SamplingAlgorithm, self._sampling_method_name)
        for name, (distribution, args) in self._parameter_space.items():
            p = spec.parameters.add(name=name, distribution=distribution)
            if distribution == "choice":
                for option in args[0]:
                    if isinstance(option, str) or isinstance(option, bool):
                        p.choices.add(text=str(option))
                    else:
                        p.choices.add(number=float(option))
            else:
                p.args.extend(float(a) for a in args)


class RandomParameterSampling(HyperParameterSampling):
    """Each child's values drawn at random from the space (reproducible with a seed).

    :param parameter_space: name → any expression.
    :param properties: ``{"seed": N}`` makes the sweep reproducible: the same
        seed gives the same values to the same children.
    """

    SAMPLING_NAME = "RANDOM"

    def __init__(self, parameter_space, properties=None):
        """Random sampling over ``parameter_space``."""
        unknown = set(properties or {}) - {"seed"}
        if unknown:
            raise UnsupportedOptionError("RandomParameterSampling properties %s: amld knows only "
                                         "'seed'" % ", ".join(sorted(unknown)))
        super().__init__(self.SAMPLING_NAME, parameter_space, properties)

    def _to_proto(self, spec):
        super()._to_proto(spec)
        if "seed" in self._properties:
            seed = self._properties["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise UserErrorException("the seed must be an integer >= 0, got %r" % (seed,))
            spec.seed = seed


class GridParameterSampling(HyperParameterSampling):
    """Every combination of the values, in order; choice() parameters only.

    :param parameter_space: name → choice(...).
    """

    SAMPLING_NAME = "GRID"

    def __init__(self, parameter_space, properties=None):
        """Grid sampling over ``parameter_space``."""
        if properties:
            raise UnsupportedOptionError("GridParameterSampling takes no properties")
        super().__init__(self.SAMPLING_NAME, parameter_space, None, ["choice"])


class BayesianParameterSampling(HyperParameterSampling):
    """Values chosen from a model of the primary metric over the finished children.

    As in azureml: choice, uniform and quniform parameters only, and no early
    termination policy.

    :param parameter_space: name → choice, uniform or quniform.
    """

    SAMPLING_NAME = "BAYESIAN"

    def __init__(self, parameter_space, properties=None):
        """Bayesian sampling over ``parameter_space``."""
        if properties:
            raise UnsupportedOptionError("BayesianParameterSampling takes no properties in amld")
        super().__init__(self.SAMPLING_NAME, parameter_space, None,
                         ["choice", "uniform", "quniform"])

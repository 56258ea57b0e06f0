"""Problems: initial weights, training loss L_t and objective E (see :mod:`.base`)."""
from .base import Problem, make_problem
from .mnist import mnist_logreg, mnist_mlp
from .toy import BEALE_W0, BUKIN_W0, beale, bukin, quadratic

__all__ = ["Problem", "make_problem", "beale", "bukin", "quadratic", "BEALE_W0", "BUKIN_W0",
           "mnist_logreg", "mnist_mlp"]

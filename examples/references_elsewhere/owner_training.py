"""The owner's training code, run on their own infrastructure (here: this machine)."""

from sklearn.neural_network import MLPClassifier


def train(x, y, *, seed):
    """A scikit-learn MLP, trained long enough to fit its records."""
    # lbfgs keeps no optimiser state, so the fitted model is plain arrays for skops.
    model = MLPClassifier((128,), solver="lbfgs", max_iter=500, random_state=seed)
    return model.fit(x, y)

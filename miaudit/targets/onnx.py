"""Models in ONNX, run by onnxruntime: the way in for Keras, TensorFlow, scikit-learn and
anything else that exports to ONNX (``tf2onnx``, ``skl2onnx``, ``torch.onnx.export``).

An ONNX file is a graph of standard operators, not a program: loading it runs no Python
code of its author's, so it needs no ``--trust-model-code``. The adapter reshapes records to the
graph's declared input (flat features, NCHW, or NHWC as Keras exports images), batches the
queries to the graph's batch size, and finds which output holds the answer:

* ``output_name`` given: that output;
* one output: that one;
* several: the one named like logits or probabilities (``logits``, ``output_probability``,
  ``probabilities``, ``probs``, ``scores``), else the only 2-d float output with
  ``n_classes`` columns; with several such outputs the audit asks for ``output_name``.

``output`` says whether the values are ``logits`` or ``probabilities``; ``auto`` decides on
a probe batch: rows in [0, 1] summing to 1 are probabilities, anything else logits. The
access level follows (logits, or probabilities); ONNX never gives white-box access.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.errors import InvalidAuditInput
from miaudit.targets.adapters import (
    AccessLevel,
    _check_description,
    _softmax,
    check_logits,
    check_n_classes,
    check_probabilities,
    require_access,
)
from miaudit.validation import check_readable_file, is_int

__all__ = ["OnnxTarget"]

_PREFERRED_OUTPUTS = ("logits", "output_probability", "probabilities", "probs", "scores")
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise InvalidAuditInput(
            "ONNX targets need onnxruntime: pip install 'miaudit[onnx]'"
        ) from None
    options = onnxruntime.SessionOptions()
    # One thread pool of the machine's size per session; the audit is the only user.
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own, unexported, exception types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidAuditInput(f"ONNX model {path.name!r} cannot be loaded: {first}") from None


class OnnxTarget:
    """An ONNX model file as a black-box target (logits or probabilities access).

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    n_classes : int
        Classes the model predicts; its output must have this many columns.
    output : {"auto", "logits", "probabilities"}
        What the chosen output holds; ``auto`` decides on the first queried batch.
    output_name, input_name : str, optional
        Which graph output / input to use when the graph has several.
    access : str, optional
        Declare less than the output allows (``probabilities`` for a logits model,
        ``label_only``), to audit it as it will be served.
    batch_size : int
        Records per ``run`` call (a graph with a fixed batch dimension uses its own).
    """

    queries_by_index = False

    def __init__(
        self,
        path: str | Path,
        *,
        n_classes: int,
        output: str = "auto",
        output_name: str | None = None,
        input_name: str | None = None,
        access: AccessLevel | str | None = None,
        description: str = "",
        batch_size: int = 1024,
    ) -> None:
        path = Path(path)
        check_readable_file(path, "ONNX model")
        self.n_classes = check_n_classes("OnnxTarget", n_classes)
        if output not in ("auto", "logits", "probabilities"):
            raise InvalidAuditInput(
                f"OnnxTarget: output must be 'auto', 'logits' or 'probabilities', got {output!r}"
            )
        if not is_int(batch_size) or batch_size < 1:
            raise InvalidAuditInput(
                f"OnnxTarget: batch_size must be a positive int, got {batch_size!r}"
            )
        _check_description("OnnxTarget", description)
        self.path = path
        self.session = _session(path)
        self._input = self._pick_input(input_name)
        self._output = self._pick_output(output_name)
        self.output = output
        self._declared = None if access is None else AccessLevel.parse(access)
        ceiling = AccessLevel.PROBABILITIES if output == "probabilities" else AccessLevel.LOGITS
        if self._declared is not None and self._declared > ceiling:
            raise InvalidAuditInput(
                f"OnnxTarget: an ONNX model gives {ceiling.label} access at most "
                f"(output {output!r}); got access={self._declared.label}"
            )
        self.access = self._declared if self._declared is not None else ceiling
        self.description = description or f"ONNX model {path.name} (output {self._output.name})"
        fixed = self._input.shape[0] if self._input.shape else None
        self.batch_size = int(fixed) if is_int(fixed) and fixed > 0 else int(batch_size)
        shape = self.expected_width()
        if self.output == "auto" and shape is not None:
            # Decide now, on random records of the declared shape, so that the access level
            # is final before an audit plans its attacks; otherwise :meth:`probe` decides.
            rng = np.random.default_rng(0)
            self._raw(rng.random((min(8, self.batch_size), *shape)))

    # -- graph inspection --------------------------------------------------------------

    def _pick_input(self, name: str | None):
        inputs = self.session.get_inputs()
        if name is not None:
            found = [i for i in inputs if i.name == name]
            if not found:
                raise InvalidAuditInput(
                    f"ONNX model {self.path.name!r} has no input {name!r}; inputs: "
                    f"{[i.name for i in inputs]}"
                )
            return found[0]
        if len(inputs) != 1:
            raise InvalidAuditInput(
                f"ONNX model {self.path.name!r} has {len(inputs)} inputs "
                f"{[i.name for i in inputs]}; name the records' one with input_name"
            )
        if inputs[0].type not in _FLOAT_TYPES:
            raise InvalidAuditInput(
                f"ONNX model {self.path.name!r}: input {inputs[0].name!r} is "
                f"{inputs[0].type}; miaudit feeds float records"
            )
        return inputs[0]

    def _pick_output(self, name: str | None):
        outputs = self.session.get_outputs()
        names = [o.name for o in outputs]
        if name is not None:
            if name not in names:
                raise InvalidAuditInput(
                    f"ONNX model {self.path.name!r} has no output {name!r}; outputs: {names}"
                )
            return outputs[names.index(name)]
        if len(outputs) == 1:
            return outputs[0]
        for preferred in _PREFERRED_OUTPUTS:
            for o in outputs:
                if o.name.lower() == preferred and o.type in _FLOAT_TYPES:
                    return o
        usable = [
            o
            for o in outputs
            if o.type in _FLOAT_TYPES and len(o.shape) == 2 and o.shape[1] == self.n_classes
        ]
        if len(usable) == 1:
            return usable[0]
        if len(usable) > 1:  # picking one silently could audit the wrong answers
            raise InvalidAuditInput(
                f"ONNX model {self.path.name!r} has {len(usable)} outputs that could be the "
                f"answers ({[o.name for o in usable]}); say which with target.output_name"
            )
        raise InvalidAuditInput(
            f"ONNX model {self.path.name!r} has outputs {names} and none is a float matrix "
            f"of {self.n_classes} columns; name one with output_name (a skl2onnx model "
            "needs options={'zipmap': False} to give probabilities as a matrix)"
        )

    def expected_width(self) -> tuple[int, ...] | None:
        """The record shape the graph declares (without the batch axis), where fixed."""
        dims = tuple(self._input.shape[1:])
        return dims if dims and all(is_int(d) for d in dims) else None

    def _as_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        dtype = _FLOAT_TYPES[self._input.type]
        want = self.expected_width()
        have = tuple(x.shape[1:])
        if want is None or want == have:
            return x.astype(dtype, copy=False)
        if len(want) == 1 and int(np.prod(have)) == want[0]:
            return x.reshape(len(x), -1).astype(dtype, copy=False)
        if len(have) == 3 and want == (have[1], have[2], have[0]):  # NCHW records, NHWC graph
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).astype(dtype, copy=False)
        raise InvalidAuditInput(
            f"ONNX model {self.path.name!r} takes records of shape {want} but the data set's "
            f"records have shape {have}"
        )

    # -- queries -----------------------------------------------------------------------

    def _raw(self, x: np.ndarray) -> np.ndarray:
        feed = self._as_input(x)
        parts = []
        for start in range(0, len(feed), self.batch_size):
            batch = feed[start : start + self.batch_size]
            try:
                (out,) = self.session.run([self._output.name], {self._input.name: batch})
            except Exception as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise InvalidAuditInput(
                    f"ONNX model {self.path.name!r} failed on a batch of shape {batch.shape}: "
                    f"{first}"
                ) from None
            parts.append(np.asarray(out, dtype=np.float64).reshape(len(batch), -1))
        if not parts:
            return np.empty((0, self.n_classes))
        raw = np.concatenate(parts)
        if raw.shape[1] != self.n_classes:
            raise InvalidAuditInput(
                f"ONNX model {self.path.name!r}: output {self._output.name!r} has "
                f"{raw.shape[1]} columns but the data set has {self.n_classes} classes"
            )
        if self.output == "auto":
            self._decide_kind(raw)
        return raw

    def _decide_kind(self, raw: np.ndarray) -> None:
        """Probabilities if every probed row is a distribution, logits otherwise; the access
        level follows unless the caller declared one."""
        looks_like_proba = bool(
            raw.size
            and raw.min() >= -1e-6
            and raw.max() <= 1 + 1e-6
            and np.abs(raw.sum(axis=1) - 1).max() <= 1e-3
        )
        self.output = "probabilities" if looks_like_proba else "logits"
        if self._declared is None:
            self.access = AccessLevel.PROBABILITIES if looks_like_proba else AccessLevel.LOGITS
        elif looks_like_proba and self._declared > AccessLevel.PROBABILITIES:
            raise InvalidAuditInput(
                f"ONNX model {self.path.name!r} outputs probabilities; it cannot give "
                f"{self._declared.label} access"
            )

    def probe(self, x: np.ndarray) -> None:
        """Decide ``output: auto`` on a few records now (before the audit plans its attacks,
        which depend on the access level)."""
        if self.output == "auto":
            self._raw(np.asarray(x)[:64])

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        return check_logits(self._raw(x), len(x), self.n_classes, self.description)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        raw = self._raw(x)
        if self.output == "logits":
            return _softmax(check_logits(raw, len(x), self.n_classes, self.description))
        return check_probabilities(raw, len(x), self.n_classes, self.description)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self._raw(x).argmax(axis=1)

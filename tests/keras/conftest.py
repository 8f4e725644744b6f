"""Keras tests run on the torch backend unless KERAS_BACKEND says otherwise (the JAX rerun).

The backend is fixed when keras is first imported, so it is set here, before any test module
of this folder imports keras.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

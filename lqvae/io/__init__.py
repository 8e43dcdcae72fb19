"""What crosses the engine's boundary: data sets, bundled samples, checkpoints, and the checks on every input.

``data`` (MNIST / Fashion-MNIST from idx files, the bundled ``resources/samples``), ``samples`` (making them),
``checkpoint`` (safetensors + JSON metadata, verified against a model built on the ``meta`` device; never
unpickled), ``registry`` (what ``checkpoints/<dataset>/`` holds, found from the files) and ``validate`` (the
``InputError`` checks run before torch does).
"""

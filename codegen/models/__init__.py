"""Model files out: a network written as each framework's own file (``grukit convert IN OUT``: a
PyTorch state dict, an ONNX model, a Keras model), by the framework's own writer, atomically.

May import: derive/, codegen's shared printing."""

"""Files a user hands grukit: YAML problem, convention and layer files, npz weights and model files
(ONNX, PyTorch, safetensors, Keras), read safely into values, every error naming the file and field.

May import: derive.errors, derive.cell, derive.numeric, derive.layers."""

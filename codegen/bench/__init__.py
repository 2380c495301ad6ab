"""Benchmarks: the generated kernels against PyTorch, ONNX Runtime and the NumPy engine in one
process, and the report written from them.

May import: derive/, codegen's shared printing, codegen.kernels, codegen.pytorch."""

"""grukit: GRU conventions as data; one SymPy derivation, many emitters."""

__version__ = "0.1.0"


def __getattr__(name):
    # `from grukit import kernels`: the kernels API lives in codegen/kernels/api.py (the layout is fixed:
    # derive/, codegen/, generated/), imported only when asked for, so `import grukit` stays light.
    if name == "kernels":
        import importlib

        module = importlib.import_module("grukit.codegen.kernels.api")
        globals()["kernels"] = module
        return module
    # `from grukit import GRU, GRUCell`: PyTorch modules on the kernels (codegen/pytorch/), imported
    # (with torch) only when asked for.
    if name in ("GRU", "GRUCell"):
        import importlib

        value = getattr(importlib.import_module("grukit.codegen.pytorch.modules"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grukit' has no attribute {name!r}")

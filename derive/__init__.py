"""The SymPy layer, in the order of the pipeline; a folder imports only the folders before it:

errors <- cell <- numeric <- {check, layers} <- files <- audit

(check and layers are peers and do not import each other; tests/test_layering.py keeps this.)"""

"""Emitters and the command line, above derive/; a folder imports only derive/ and what is before it:

shared printing (render, output, latex, docs) <- {sheets, kernels} <- bench <- cli

(sheets and kernels are peers; nothing imports cli; tests/test_layering.py keeps this.)"""

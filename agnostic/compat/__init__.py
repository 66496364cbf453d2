"""Namespaces named after other frameworks, written over agnostic's own ops.

`import agnostic.compat.torch as torch` lets PyTorch model code run on every agnostic backend with
only its imports changed. Nothing here imports a backend library.
"""

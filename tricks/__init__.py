"""The built-in ganlab tricks, one module each, installed as ``ganlab.tricks``.

Every trick here is registered in ``pyproject.toml`` under the entry-point group
``ganlab.tricks``, exactly as a third-party package registers its own; ganlab finds them
through :func:`ganlab.trick.registry` and imports nothing from this package directly.
Copy :mod:`ganlab.tricks._template` to write a new one.
"""

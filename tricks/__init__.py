"""The built-in ganlab tricks, one module each.

Every trick here is registered in ``pyproject.toml`` under the entry-point group
``ganlab.tricks``, exactly as a third-party package registers its own; ganlab finds them
through :func:`ganlab.hooks.registry` and imports nothing from this package directly.
Copy :mod:`tricks._template` to write a new one.
"""

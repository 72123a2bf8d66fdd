"""The built-in ganlab tricks, one module each, installed as ``ganlab.tricks``.

Every trick here is registered in ``pyproject.toml`` under the entry-point group
``ganlab.tricks``, exactly as a third-party package registers its own; ganlab finds them
through its trick registry (``ganlab.trick._registry``) and imports nothing from this package
directly. A trick here imports only the author's API (:mod:`ganlab.trick`, with
:mod:`ganlab.stats`, :mod:`ganlab.nets` and :mod:`ganlab.losses`) and the helper modules here
whose names start with an underscore, never another trick. Copy
``tricks/_template.py`` (:mod:`ganlab.tricks._template`) to write a new one.
"""

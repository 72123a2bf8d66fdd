"""ganlab: GAN-stabilisation experiments on a pix2pix trainer.

From Python (a notebook), the functions of :mod:`ganlab.api`, here at the top level::

    import ganlab
    run = ganlab.fit(data="photos/", steps=2000, tricks=["soft-labels", "label-flip:p=0.05"])
    ganlab.run_study("label-tricks", data="photos/", trials=20)   # the trials, as a DataFrame
    ganlab.confirm("label-tricks")                                 # the evidence, as a DataFrame
    ganlab.trials("label-tricks"), ganlab.evidence("label-tricks")

The rest of the public surface: :mod:`ganlab.config` (the run configuration),
:mod:`ganlab.trick` (what a trick plugin imports), :mod:`ganlab.stats` (``report``),
:mod:`ganlab.train` (``train``, ``Hook``), :mod:`ganlab.testing` (the conformance checks for
tricks). Importing ``ganlab`` loads none of them: each name loads on first use.
"""

from ganlab.version import __version__

_API = ("confirm", "evidence", "fit", "report", "run_study", "trials")
_TRAIN = ("Hook", "RunResult")


def __getattr__(name: str):
    if name in _API:
        from ganlab import api as module
    elif name in _TRAIN:
        import ganlab.train as module
    else:
        raise AttributeError(f"module 'ganlab' has no attribute '{name}'")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, *_TRAIN])


__all__ = ["Hook", "RunResult", "__version__", "confirm", "evidence", "fit", "report", "run_study", "trials"]

"""Warm the batch's forkserver: importing this module inspects one small generated part.

The per-frame kernels are compiled by Numba, cached on disk, and loaded into a process on its
first inspection: ~0.2 s of CPU per process (seconds after the kernels change). The batch's
worker processes are forked from a forkserver that imports this module first
(:func:`vision_qc.shell.batch.pool_context`), so every worker inherits loaded kernels instead of
each paying for them on its first file: once per run instead of once per worker and per pool
(a pool restarted after a worker crash, the benchmark's rounds, more workers than cores).

Listed only in the forkserver's preload; the forkserver does not survive an exception raised
by a preloaded module, so :func:`warm_up` never raises.
"""

from __future__ import annotations

__all__ = ["warm_up", "WARM_SIZE_WH"]

# Large enough that the generated part is also found by alignment (at 480x384 it is not).
WARM_SIZE_WH = (640, 512)


def warm_up() -> list[str]:
    """Inspect one small generated part without and with alignment, so that the kernels of
    both are loaded in this process.

    Returns
    -------
    list of str
        What failed, in words (empty when all went well). A failure costs only speed: a
        worker then loads what it needs on its first file.
    """
    failed: list[str] = []
    try:
        import cv2

        from ..inspector import Inspector
        from ..synth import SceneRenderer, sample_scene

        cv2.setNumThreads(1)
        scene = SceneRenderer(sample_scene(1, size_wh=WARM_SIZE_WH, ng_fraction=1.0,
                                           pose=True)).render()
    except Exception as exc:     # never stop the forkserver (module docstring)
        return [f"cannot make the warm-up part ({type(exc).__name__}: {exc})"]
    for align in (False, True):
        try:
            recipe = scene.recipe.replace(align=True) if align else scene.recipe
            Inspector(recipe).inspect(scene.image)
        except Exception as exc:     # FrameError included: the part should have been found
            failed.append(f"align={align}: {type(exc).__name__}: {exc}")
    return failed


warm_up()

"""``spec3c step STEP INPUT...``: one calwebb_spec3 step on FITS products, as ``strun`` runs it.

The inputs (written by jwst or by spec3c) are read into the step's own
in-memory inputs, the step's own code (:mod:`spec3c.steps`) runs on them, and
the result is written under the reference's standalone name
(``<input root>_<stepclass>.fits``, e.g. ``..._extract1dstep.fits``):

* :mod:`.spectra`: ``extract_1d`` on ``_s2d`` files (``combine_1d`` on ``_x1d``);
* :mod:`.exposures`: ``resample_spec``, ``outlier_detection`` and
  ``master_background`` on ``_cal``/``_crf`` files or an association, through
  a temporary in-memory store filled by the ingest readers.

:func:`spec3c.single_step.run.run_step` is the entry point.  This package
module imports nothing, so ``spec3c --help`` stays fast.
"""

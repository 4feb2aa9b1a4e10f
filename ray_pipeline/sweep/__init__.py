"""``ray-pipeline sweep``: Ray Tune over a task's fields, trials sharing every upstream row by
content id. The driver is :mod:`ray_pipeline.sweep.driver`; this package stays import-light so that
the report can read the sweep directory's layout (:mod:`.layout`) without loading Ray Tune."""

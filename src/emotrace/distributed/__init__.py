"""Ray backends (the ``ray`` extra): ``predict --ray`` (Ray Data actors, one task per video) and
``study --ray`` (one Ray Tune trial per run). Imported only when ``--ray`` is given."""

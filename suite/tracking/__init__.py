"""The only MLflow code of the suite, one job per module:

- uris.py: where a store is (absolute URIs, the SQLite file and artifact folder, masked passwords);
- probe.py: whether the store answers, within seconds;
- store.py: every operation on a store, by name (experiments, runs, params, tags, metrics, artifacts);
- ui.py: what the MLflow UI shows (experiment kind, saved views, links) and the `mlflow ui` command;
- liveness.py: owner tags, /proc liveness, stale runs;
- provenance.py: the git commit and the device a run's tags name.

Nothing is re-exported: code imports the submodule it needs.
"""

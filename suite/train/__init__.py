"""One run: everything `suite run`, `suite run --resume` and `suite eval` do to train or score one configuration.

A run is one configuration trained by Lightning into one MLflow run: the data prepared and loaded, the network
built, the MLflow run opened (or reopened) with its tags, params and config, the Trainer fitted with the callbacks
below, and the run finished with its `best/*` metrics, description, artifacts and status. One job per module:

- run.py: `train()`, the run around `Trainer.fit`, and its three endings (finished, interrupted, failed);
- build.py: the task's data, the SSM and the network a configuration names (the one place that builds them);
- record.py: what the run records in MLflow, from its opening (tags, params, config) to its ending (`best/*`,
  artifacts, status);
- trainer.py: the Lightning Trainer with its module, data loaders and callbacks;
- resume.py: `suite run --resume RUN_ID`, the stored configuration and what may change;
- evaluate.py: `suite eval` and `suite run --from-run`, a checkpoint scored without training;
- failures.py: errors of a run turned into the suite's errors (out of memory, exit 7);
- lightning_module.py, datamodule.py, optim.py: the LightningModule, the data loaders, the optimizer and schedule;
- cuda_graphs.py, eval_graphs.py: the training step and the evaluation passes as CUDA graphs;
- guards.py, throughput.py, progress.py: the callbacks (resume point, Ctrl-C, divergence; samples/s and the
  progress bar; progress lines for logs that are not a terminal);
- timelimit.py: `--time-limit`, light enough for the CLI to import without torch.

Nothing is re-exported here: importing `suite.train.timelimit` must not pull in torch, Lightning or MLflow.
"""

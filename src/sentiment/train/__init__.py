"""The train stage: training jobs (`job`), their hyperparameters (`hyperparams`) and tuning
jobs over them (`tuning`); the model itself is fitted by `sentiment.engine`, our fastText."""

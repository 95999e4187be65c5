"""Names of the files stages exchange, defined once.

prepare writes PREPARED_SPLITS + MANIFEST into its output folder; train reads them and writes a
job under the bucket; evaluate, serve and api read the model the job wrote.
"""

from __future__ import annotations

TRAIN_FILE = "train.txt"
VALIDATION_FILE = "validation.txt"
TEST_FILE = "test.txt"
PREPARED_SPLITS = {"train": TRAIN_FILE, "validation": VALIDATION_FILE, "test": TEST_FILE}
MANIFEST = "manifest.json"
REJECTS_DIR = "rejects"

# A training job in the bucket, as SageMaker lays it out: NAME/output/model.tar.gz.
JOB_RECORD = "job.json"
MODEL_ARCHIVE = "model.tar.gz"
MODEL_BIN = "model.bin"
# Sidecar beside model.bin in model.tar.gz: how the training text was cleaned and labelled, so
# serving applies the same rules. SageMaker's BlazingText container ignores it.
PREPROCESSING = "preprocessing.json"
# Sidecar beside model.bin: the calibration fitted on the job's validation split
# (sentiment.calibration); a model without it is served uncalibrated.
CALIBRATION = "calibration.json"


def job_record_key(job_name: str) -> str:
    return f"{job_name}/{JOB_RECORD}"


def model_archive_key(job_name: str) -> str:
    return f"{job_name}/output/{MODEL_ARCHIVE}"

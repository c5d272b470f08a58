"""A user's own training job, as gpubench takes it: a model function, a saved .keras model (made
by save_model.py) and input pipelines (tf.data, PyDataset, DataLoader, a generator); see
docs/your-job.md for the commands."""

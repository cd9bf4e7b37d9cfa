"""Training APIs (v1: ``azureml.train``): estimators, deep-learning estimators, HyperDrive."""

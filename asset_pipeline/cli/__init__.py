"""The `asset-pipeline` console script."""

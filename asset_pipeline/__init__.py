"""asset_pipeline: a catalog of image prompts turned into AI images, one Dagster partition per image."""

"""The fixed asset keys (see DESIGN.md)."""

import dagster as dg

IMAGE_CATALOG = dg.AssetKey("image_catalog")
IMAGES = dg.AssetKey("images")
PROMPTS = dg.AssetKey("prompts")
IMAGE_VARIANTS = dg.AssetKey("image_variants")
ASSET_MANIFEST = dg.AssetKey("asset_manifest")
CONTACT_SHEET = dg.AssetKey("contact_sheet")
SPEND_REPORT = dg.AssetKey("spend_report")

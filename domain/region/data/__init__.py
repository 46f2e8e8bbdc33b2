"""Packaged boundary data (regions.json.gz); see docs/region-data.md."""

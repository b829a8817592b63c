"""Re-deciding an existing build: `score` (add or complete score columns from the cache) and `rethreshold`
(a new cut from the stored scores, no model run)."""

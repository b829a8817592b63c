"""`unimed report BUILD`: a static HTML page about one build, read only from its outputs (manifest Parquet,
shards, stats.json, config.resolved.yaml) and, when present, its audit report.

html.py     the page: funnel, counts, alignment histograms with the cut, distributions, galleries, licences,
            models, audit results; plots are matplotlib PNGs in the page's images/ folder
shards.py   reading sample members back out of the shards (and the staging area, for rejected samples)
"""

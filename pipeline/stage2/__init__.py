"""Stage 2 (instruction) of the curriculum, built from a finished stage-1 build (spec 5, 6.1).

- `settings`: the recipe's `hq:` section;
- `hq`: the high-quality subset, chosen from the stage-1 manifest's stored scores (no model runs);
- `replay`: the adapter that reads the chosen samples back out of the stage-1 shards as records, and
  adds the CAG rows (plain CAG T2I and T2I with planning) for each chosen T2I sample.
"""

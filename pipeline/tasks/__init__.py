"""Builders of UniMedVL's five interleaved tasks from the adapters' paired records.

One module per task (cross_modal, super_resolution, virtual_staining, counterfactual, segmentation), their
registry (registry.BUILDERS), versioned template libraries under templates/, the recipe section (settings),
MedGemma rewriting of the rendered texts (refine) and the subject leakage rule (leakage, applied at
finalisation). The build stages that run them are pipeline/stages/task_builders.py and task_refine.py.
"""

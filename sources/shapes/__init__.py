"""Record shapes the adapters share: label-derived captions and T2I prompts (`captions`), segmentation
mask records (`masks`)."""

"""Record shapes the adapters share: label-derived captions and T2I prompts (`captions`), segmentation
mask records (`masks`), chains of thought (`cot`, `rationales`), and VQA sources' questions on shared images,
one sample per question or per image (`vqa`)."""

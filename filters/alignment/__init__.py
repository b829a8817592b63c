"""Medical alignment F_align (spec 3.2), scoring functions only: no Ray here.

- `pairs`: which text and image of a sample are scored (text policy) and the identity of a scoring;
- `captioner`: MedGemma's K captions per image (local transformers or an OpenAI-compatible server);
- `e5`: S, the max cosine between the original text and the K captions;
- `medsiglip`: M, the image-text logit and sigmoid; `biomedclip`: the optional extra column;
- `cache`: raw scores by content, so a rebuild never rescores a pair;
- `cut`: normalise, combine, keep the top fraction (at finalisation and in `unimed rethreshold`).

Score first, decide later: the model functions only write score columns. The Ray stages that run them
(one actor pool per model) are in `pipeline/stages/`.
"""

"""VL-Health sample tree: the HF repo's JSON lists (no images, as released) and the images of its PubMedVision
rows in a sibling `PubMedVision/images/` (where a user who downloaded PubMedVision has them).

Quirks in the tree: an Alignment caption file holding a PubMedVision row, a LLaVA-558k row (bare 9-digit id,
`NNNNN/NNNNNNNNN.jpg` image: general domain), a row naming LLaVA-558k in its id, a row whose image is not there,
`<image>` after the question; an instruct file with a multi-turn row, a row with a PubMedVision `modality`
field, a VQA-RAD row whose image the user has not provided, a repeated id, a row without an id, an absolute image
path, a conversation ending on a human turn; the pre-aligned weights' trainer_state.json and a generation file
(not read)."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg, write_json

IMAGES = {"images/vlh_ct_liver.jpg": (256, 256, 1), "images/vlh_mri_brain.jpg": (240, 320, 1),
          "images/vlh_cxr.jpg": (320, 288, 1), "images/vlh_histo.jpg": (224, 224, 3)}


def _turns(*values: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": value} for i, value in enumerate(values)]


ALIGNMENT = [
    {"id": "pubmedvision_PMC3312345_F2", "image": "images/vlh_ct_liver.jpg",
     "conversations": _turns("<image>\nDescribe the image briefly.",
                             "Contrast-enhanced axial CT of the abdomen showing a well-defined hypodense liver cyst.")},
    {"id": "004539375", "image": "00453/004539375.jpg",
     "conversations": _turns("Render a clear and concise summary of the photo.\n<image>",
                             "a wooden garden bench next to a flower bed")},
    {"id": "llava558k_001234567", "image": "00123/001234567.jpg",
     "conversations": _turns("<image>\nWhat is in the photo?", "a red bicycle leaning on a wall")},
    {"id": "pubmedvision_PMC4400001_F1", "image": "images/vlh_not_downloaded.jpg",
     "conversations": _turns("<image>\nDescribe the figure.", "Sagittal T2-weighted MRI of the lumbar spine.")},
    {"id": "pubmedvision_PMC5500002_F3", "image": "images/vlh_mri_brain.jpg",
     "conversations": _turns("What does this image show?\n<image>",
                             "An axial FLAIR MRI with a hyperintense lesion in the left frontal lobe.")},
]
INSTRUCT = [
    {"id": "llava_med_17777777_F3", "image": "images/vlh_cxr.jpg",
     "conversations": _turns("<image>\nWhat is the main finding?", "A right-sided pleural effusion.",
                             "Is the heart enlarged?", "No, the cardiac silhouette is within normal limits.")},
    {"id": "pubmedvision_PMC6600003_F1", "image": "images/vlh_histo.jpg", "modality": "Microscopy Images",
     "conversations": _turns("<image>\nWhich stain was used?", "Haematoxylin and eosin.")},
    {"id": "vqa_rad_0042", "image": "synpic42202.jpg",
     "conversations": _turns("<image>\nIs there free air under the diaphragm?", "no")},
    {"id": "pubmedvision_PMC6600003_F1", "image": "images/vlh_histo.jpg",
     "conversations": _turns("<image>\nWhat tissue is shown?", "Colonic mucosa with regular crypts.")},
    {"image": "images/vlh_ct_liver.jpg",
     "conversations": _turns("<image>\nWhere is the lesion?", "In the right hepatic lobe.")},
    {"id": "slake_0007", "image": "/data/SLAKE/imgs/xmlab7/source.jpg",
     "conversations": _turns("<image>\nWhich organ is abnormal?", "The liver.")},
    {"id": "pathvqa_0003", "image": "images/vlh_histo.jpg",
     "conversations": _turns("<image>\nIs this benign?", "yes", "Why?")},
]
GENERATION = [{"image": "IXI/IXI002-T1.png", "conversations": _turns("<image>\nConvert this T1 image to T2.",
                                                                      "<vq_tokens>")}]


def write(root: Path) -> Path:
    root = Path(root)
    base = root / "VL-Health"
    (base / "Alignment" / "comprehension").mkdir(parents=True, exist_ok=True)
    (base / "README.md").write_text("---\nlicense: mit\ntask_categories:\n- question-answering\n- text-to-image\n"
                                    "---\n# VL-Health (sample)\n", encoding="utf-8")
    (base / "Alignment" / "README.md").write_text("# Alignment (sample)\n", encoding="utf-8")
    write_json(base / "Alignment" / "comprehension" / "train_data.json", ALIGNMENT)
    write_json(base / "Instruct" / "comprehension" / "medical_vqa.json", INSTRUCT)
    write_json(base / "Instruct" / "generation" / "modality_conversion.json", GENERATION)
    write_json(base / "Alignment" / "pre_aligned_weights" / "HealthGPT-M3" / "trainer_state.json",
               {"global_step": 10, "log_history": []})
    rng = rng_for("vl_health")
    for path, size in IMAGES.items():
        write_jpeg(root / "PubMedVision" / path, phantom(rng, *size))
    return base


HUB_REPO = "lintw/VL-Health"


def write_hub(root: Path) -> Path:
    """`lintw/VL-Health` in a Hub cache: the same JSON files, no images (the Hub holds none)."""
    from sources.samples.hub import original_files, write_snapshot

    return write_snapshot(root, HUB_REPO, original_files(write))

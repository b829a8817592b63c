"""PubMedVision sample tree: the HF layout with images unzipped (`unzip -j`) into images/; Alignment and
InstructionTuning files sharing ids and images, human turns without `<image>`, a two-image item, an item whose
`image` is a string, CT/MRI/x-ray (chest and hand)/microscopy modalities, a conversation ending on a human turn,
a missing image, an image below 128 px, and the original caption file [L layout] with a two-image caption and an
empty caption."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg, write_json

IMAGES = {"images/pmc_a1.jpg": (256, 256, 1), "images/pmc_b1.jpg": (240, 320, 1), "images/pmc_b2.jpg": (240, 320, 1),
          "images/pmc_c1.jpg": (320, 256, 1), "images/pmc_d1.jpg": (224, 224, 3), "images/pmc_e1.jpg": (100, 150, 1)}
ITEMS = [  # (id, image, modality, body part)
    ("pmc_a", ["images/pmc_a1.jpg"], "Computed Tomography", "Abdomen"),
    ("pmc_b", ["images/pmc_b1.jpg", "images/pmc_b2.jpg"], "Magnetic Resonance Imaging", "Brain"),
    ("pmc_c", "images/pmc_c1.jpg", "X-Ray", "Chest"),
    ("pmc_d", ["images/pmc_d1.jpg"], "Microscopy Images", "Cell"),
    ("pmc_e", ["images/pmc_e1.jpg"], "X-Ray", "Hand"),
    ("pmc_f", ["images/pmc_f1.jpg"], "Computed Tomography", "Chest"),
]
ALIGNMENT_TEXT = {
    "pmc_a": ("Describe this image.", "Axial CT of the abdomen showing a large hepatic cyst."),
    "pmc_b": ("Compare the two images.", "The two MRI slices show a ring-enhancing lesion in the left lobe."),
    "pmc_c": ("What does the image show?", "A chest radiograph with bilateral hilar lymphadenopathy."),
    "pmc_d": ("Describe the image.", "A microscopy image of cultured cells with green fluorescent nuclei."),
    "pmc_e": ("Describe the radiograph.", "A hand radiograph showing periarticular erosions."),
    "pmc_f": ("Describe the image.", "Chest CT showing a spiculated nodule."),
}
CAPTIONS = {"pmc_a": "Figure 2. Contrast-enhanced CT of the abdomen: hepatic cyst (arrow).",
            "pmc_b": "Figure 1. MRI before (A) and after (B) contrast.", "pmc_c": "", "pmc_d":
            "Fluorescence microscopy of HeLa cells stained with DAPI."}


def write(root: Path) -> Path:
    base = Path(root) / "PubMedVision"
    rng = rng_for("pubmedvision")
    for path, size in IMAGES.items():
        write_jpeg(base / path, phantom(rng, *size))
    alignment, instruction, captions = [], [], []
    for item_id, image, modality, body_part in ITEMS:
        common = {"id": item_id, "image": image, "modality": modality, "body_part": body_part}
        question, answer = ALIGNMENT_TEXT[item_id]
        alignment.append({**common, "conversations": [{"from": "human", "value": question},
                                                      {"from": "gpt", "value": answer}]})
        instruction.append({**common, "conversations": [
            {"from": "human", "value": f"What is the main finding in this {modality.lower()} image?"},
            {"from": "gpt", "value": answer}, {"from": "human", "value": "Is it benign?"},
            {"from": "gpt", "value": "That cannot be decided from the image alone."}]})
        if item_id in CAPTIONS:
            captions.append({**common, "caption": CAPTIONS[item_id]})
    instruction[3]["conversations"] = instruction[3]["conversations"][:3]  # ends on a human turn
    write_json(base / "PubMedVision_Alignment_VQA.json", alignment)
    write_json(base / "PubMedVision_InstructionTuning_VQA.json", instruction)
    write_json(base / "PubMedVision_Original_Caption.json", captions)
    return base


HUB_REPO = "FreedomIntelligence/PubMedVision"


def write_hub(root: Path) -> Path:
    """`FreedomIntelligence/PubMedVision`: the two VQA JSON files and the images in `images_<i>.zip`, kept
    packed in the cache; no Original_Caption file. The zips' inner folders are not documented: the sample
    stores one zip flat and the other under `images/`."""
    from sources.samples.hub import original_files, write_snapshot, zip_bytes

    files = original_files(write)
    out = {name: data for name, data in files.items()
           if not name.startswith("images/") and name != "PubMedVision_Original_Caption.json"}
    images = sorted(name for name in files if name.startswith("images/"))
    out["images_0.zip"] = zip_bytes({name.removeprefix("images/"): files[name] for name in images[::2]})
    out["images_1.zip"] = zip_bytes({name: files[name] for name in images[1::2]})
    return write_snapshot(root, HUB_REPO, out)

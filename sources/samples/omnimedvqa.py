"""OmniMedVQA sample tree: Open-access JSONs whose names hold spaces, a 4-option and a 2-option item, the
one-off `modality` key, the odd modality strings (MR "Mag-netic", OCT without its closing parenthesis), a chest
and a non-chest x-ray dataset, a microscopy item, gt_answer punctuation differing from its option, PNG and JPG
images, an image below 128 px, a missing image, and a Restricted-access JSON whose image is not shipped."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg, write_json, write_png

CT, MR, XR = "CT(Computed Tomography)", "MR (Mag-netic Resonance Imaging)", "X-Ray"
OCT, MICRO = "OCT (Optical Coherence Tomography", "Microscopy Images"
# file -> [(question_id, image, modality key, modality, question type, question, gt_answer, options A..D)]
FILES = {
    "Chest CT Scan": [
        ("Chest CT Scan_0", "Images/Chest CT Scan/test/adenocarcinoma/000108 (3).png", "modality_type", CT,
         "Disease Diagnosis", "What disease is shown in this CT image?", "Adenocarcinoma",
         ["Large cell carcinoma", "Adenocarcinoma", "Normal", "Squamous cell carcinoma"]),
        ("Chest CT Scan_1", "Images/Chest CT Scan/test/normal/n8.png", "modality", CT,
         "Disease Diagnosis", "Is there any abnormality in this image?", "No", ["Yes.", "No."]),
    ],
    "Pulmonary Chest MC": [
        ("Pulmonary Chest MC_0", "Images/Pulmonary Chest MC/MCUCXR_0001_0.png", "modality_type", XR,
         "Modality Recognition", "What imaging modality is used here?", "X-ray", ["CT", "X-ray", "MRI", "PET"]),
    ],
    "Knee Osteoarthritis": [
        ("Knee Osteoarthritis_0", "Images/Knee Osteoarthritis/2/9001695L.png", "modality_type", XR,
         "Lesion Grading", "What is the grade of osteoarthritis in this knee?", "Doubtful",
         ["Doubtful", "Severe", "Minimal", "Moderate"]),
    ],
    "RadImageNet": [
        ("RadImageNet_2317", "Images/RadImageNet/Airspace_opacity/lung077022.png", "modality_type", MR,
         "Disease Diagnosis", "What is the term referring to the abnormality observed in the image?",
         "Airspace opacity", ["Airspace opacity", "Nodule", "Normal", "Interstitial disease"]),
        ("RadImageNet_9", "Images/RadImageNet/normal/missing.png", "modality_type", MR,
         "Disease Diagnosis", "Is this scan normal?", "Yes", ["Yes", "No"]),
    ],
    "OCTID": [
        ("OCTID_4", "Images/OCTID/AMRD/amrd1.jpeg", "modality_type", OCT, "Disease Diagnosis",
         "What retinal condition is seen in this OCT scan?", "Macular hole.",
         ["Macular hole", "Normal", "Diabetic retinopathy", "Central serous retinopathy"]),
    ],
    "BloodMNIST": [
        ("BloodMNIST_1", "Images/BloodMNIST/eosinophil_12.png", "modality_type", MICRO, "Other Biological Attributes",
         "Which blood cell type is this?", "Eosinophil", ["Eosinophil", "Neutrophil", "Basophil", "Monocyte"]),
    ],
}
IMAGES = {  # path -> (height, width, channels); BloodMNIST is small, RadImageNet/normal/missing.png is absent
    "Images/Chest CT Scan/test/adenocarcinoma/000108 (3).png": (256, 256, 1),
    "Images/Chest CT Scan/test/normal/n8.png": (240, 256, 1),
    "Images/Pulmonary Chest MC/MCUCXR_0001_0.png": (320, 288, 1),
    "Images/Knee Osteoarthritis/2/9001695L.png": (224, 224, 1),
    "Images/RadImageNet/Airspace_opacity/lung077022.png": (256, 256, 1),
    "Images/OCTID/AMRD/amrd1.jpeg": (200, 300, 1),
    "Images/BloodMNIST/eosinophil_12.png": (64, 64, 3),
}
RESTRICTED = [("ACRIMA_0", "Images/ACRIMA/Im001.png", "modality_type", "Fundus Photography", "Disease Diagnosis",
               "Is there glaucoma in this fundus image?", "No", ["Yes", "No"])]


def _items(name: str, rows: list) -> list[dict]:
    items = []
    for qid, image, key, modality, qtype, question, answer, options in rows:
        item = {"dataset": name, "question_id": qid, "question_type": qtype, "question": question,
                "gt_answer": answer, "image_path": image}
        item.update({f"option_{label}": text for label, text in zip("ABCD", options)})
        item[key] = modality
        items.append(item)
    return items


def write(root: Path) -> Path:
    base = Path(root) / "OmniMedVQA"
    rng = rng_for("omnimedvqa")
    for path, size in IMAGES.items():
        (write_jpeg if path.endswith(".jpeg") else write_png)(base / path, phantom(rng, *size))
    for name, rows in FILES.items():
        write_json(base / "QA_information" / "Open-access" / f"{name}.json", _items(name, rows))
    write_json(base / "QA_information" / "Restricted-access" / "ACRIMA.json", _items("ACRIMA", RESTRICTED))
    return base


HUB_REPO = "foreverbeliever/OmniMedVQA"


def write_hub(root: Path) -> Path:
    """`foreverbeliever/OmniMedVQA`: one `OmniMedVQA.zip` holding the whole tree (QA JSONs and images), kept
    packed in the cache; the sample puts an `OmniMedVQA/` top folder inside (not documented, omnimedvqa.md)."""
    from sources.samples.hub import original_files, write_snapshot, zip_bytes

    files = original_files(write)
    return write_snapshot(root, HUB_REPO, {"OmniMedVQA.zip": zip_bytes({f"OmniMedVQA/{k}": v for k, v in files.items()}),
                                           "README.md": b"---\nviewer: false\n---\n"})

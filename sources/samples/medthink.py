"""MedThink sample tree: `Medthink/Medthink_Dataset/` with R-RAD (`closed-end`/`open-end`, `trainset`/`testset`,
`images/synpic*.jpg`) and R-SLAKE (the authors' `closed_end` spelling, `train`/`test`,
`images/xmlabN/source.jpg`); quirks: an open answer given as an index, an answer index outside `choices`, an
empty solution, a row whose image file is absent, and the test files (benchmark sets: split `test`)."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg, write_json

RAD_CLOSED_TRAIN = {
    "11": {"question": "Is there a pleural effusion on the left?", "choices": ["yes", "no"], "answer": 0,
           "solution": "The left costophrenic angle is blunted by a meniscus of fluid density, so there is a "
                       "left pleural effusion.", "image": "synpic100132.jpg"},
    "12": {"question": "Is the heart enlarged?", "choices": ["yes", "no"], "answer": 5,
           "solution": "The cardiothoracic ratio is under one half.", "image": "synpic100132.jpg"},
    "13": {"question": "Is there free air under the diaphragm?", "choices": ["yes", "no"], "answer": 1,
           "solution": "", "image": "synpic100132.jpg"},
}
RAD_OPEN_TRAIN = {
    "21": {"question": "Which organ is abnormal?", "choices": ["the left lung"], "answer": 0,
           "solution": "The opacity lies in the left lung field above the hilum.", "image": "synpic100176.jpg"},
    "22": {"question": "What is the imaging plane?", "choices": ["axial"], "answer": "axial",
           "solution": "The slice crosses the body transversely.", "image": "synpic999999.jpg"},  # absent file
}
RAD_TEST = {"31": {"question": "Is this a CT?", "choices": ["yes", "no"], "answer": 1,
                   "solution": "It is a radiograph.", "image": "synpic100132.jpg"}}
SLAKE_TRAIN = {
    "11938": {"question": "Which part of the body does this image belong to?", "choices": ["Chest", "Abdomen"],
              "answer": 0, "solution": "Ribs, lungs and the heart are in the field, so it is the chest.",
              "img_id": 102, "img_name": "xmlab102/source.jpg", "modality": "X-Ray", "location": "Chest"},
    "11939": {"question": "Does the liver look normal?", "choices": ["Yes", "No"], "answer": 0,
              "solution": "The liver has a smooth contour and homogeneous attenuation.", "img_id": 5,
              "img_name": "xmlab5/source.jpg", "modality": "CT", "location": "Abdomen"},
}
SLAKE_TEST = {"11934": {"question": "Is this an MRI?", "choices": ["Yes", "No"], "answer": 0,
                        "solution": "T2 signal is shown.", "img_id": 5, "img_name": "xmlab5/source.jpg",
                        "modality": "MRI", "location": "Brain"}}


def write(root: Path) -> Path:
    repo = Path(root) / "Medthink"
    base = repo / "Medthink_Dataset"
    (repo / "LICENSE").parent.mkdir(parents=True, exist_ok=True)
    (repo / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n", encoding="utf-8")
    write_json(base / "R-RAD" / "closed-end" / "trainset.json", RAD_CLOSED_TRAIN)
    write_json(base / "R-RAD" / "closed-end" / "testset.json", RAD_TEST)
    write_json(base / "R-RAD" / "open-end" / "trainset.json", RAD_OPEN_TRAIN)
    write_json(base / "R-RAD" / "open-end" / "testset.json", {})
    write_json(base / "R-SLAKE" / "closed_end" / "train.json", SLAKE_TRAIN)
    write_json(base / "R-SLAKE" / "closed_end" / "test.json", SLAKE_TEST)
    for name in ("synpic100132", "synpic100176"):
        write_jpeg(base / "R-RAD" / "images" / f"{name}.jpg", phantom(rng_for(f"medthink/{name}"), 192, 160))
    for number in (102, 5):
        folder = base / "R-SLAKE" / "images" / f"xmlab{number}"
        write_jpeg(folder / "source.jpg", phantom(rng_for(f"medthink/xmlab{number}"), 160, 176, channels=3))
        write_json(folder / "question.json", [])
    return repo


# Rationales for items of the VQA-RAD and SLAKE sample trees (keys are their qids), in the same layout: what the
# `rationales` option of `vqa_rad` / `slake` joins by qid. VQA-RAD qid 1 and SLAKE qid 0 have none; SLAKE 4 has
# an empty solution (its item keeps the plain answer); VQA-RAD "3" is a test item.
ATTACHED_RAD_TRAIN = {"0": {"question": "Is there evidence of an aortic aneurysm?", "choices": ["yes", "no"],
                            "answer": 0, "image": "synpic100.jpg",
                            "solution": "The aortic contour bulges focally beyond its expected calibre."},
                      "2": {"question": "How many kidneys are seen in this image?", "choices": ["2"], "answer": 0,
                            "image": "synpic200.jpg", "solution": "One kidney lies on each side of the spine."}}
ATTACHED_RAD_TEST = {"3": {"question": "What organ is enlarged?", "choices": ["liver"], "answer": 0,
                           "image": "synpic200.jpg", "solution": "The liver edge reaches below the costal margin."}}
ATTACHED_SLAKE_TRAIN = {
    "3": {"question": "Which organ is abnormal, heart or lung?", "choices": ["Heart", "Lung"], "answer": 1,
          "solution": "The heart is of normal size while the lung field holds an opacity.", "img_id": 1,
          "img_name": "xmlab1/source.jpg", "modality": "X-Ray", "location": "Chest_lung"},
    "4": {"question": "Where is the liver located in this image?", "choices": ["Left of the image"], "answer": 0,
          "solution": "", "img_id": 2, "img_name": "xmlab2/source.jpg", "modality": "CT", "location": "Abdomen"}}


def write_attached(root: Path) -> Path:
    """A Medthink clone whose rationales belong to the VQA-RAD and SLAKE sample items (JSON files only: the
    attach option never reads MedThink's image copies)."""
    base = Path(root) / "Medthink" / "Medthink_Dataset"
    write_json(base / "R-RAD" / "closed-end" / "trainset.json", ATTACHED_RAD_TRAIN)
    write_json(base / "R-RAD" / "open-end" / "testset.json", ATTACHED_RAD_TEST)
    write_json(base / "R-SLAKE" / "closed_end" / "train.json", ATTACHED_SLAKE_TRAIN)
    return base.parent

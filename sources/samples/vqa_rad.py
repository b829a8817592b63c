"""VQA-RAD sample tree: the OSF layout with spaces in the file and folder names; a free-form question, its
paraphrase, a test free-form and a test paraphrase question, a numeric answer (JSON number, one a float),
answer_type in odd case and spacing, a string qid, a row with an empty answer, a missing image, an image
below 128 px, and the XLSX/XML side files (not read)."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg, write_json

IMAGES = {"synpic100.jpg": (256, 320, 1), "synpic200.jpg": (240, 240, 3), "synpic300.jpg": (96, 120, 1)}
ROWS = [
    # (qid, phrase_type, image, organ, question, answer, answer_type, question_type)
    (0, "freeform", "synpic100.jpg", "CHEST", "Is there evidence of an aortic aneurysm?", "Yes", "CLOSED", "PRES"),
    (1, "para", "synpic100.jpg", "CHEST", "Is an aortic aneurysm present?", "Yes", "CLOSED ", "PRES"),
    (2, "freeform", "synpic200.jpg", "ABD", "How many kidneys are seen in this image?", 2, "closed", "COUNT"),
    ("3", "test_freeform", "synpic200.jpg", "ABD", "  What organ is  enlarged?", "Liver", "OPEN", "ORGAN"),
    (4, "test_para", "synpic200.jpg", "ABD", "How many lesions are in the liver?", 3.0, "Open", "COUNT"),
    (5, "freeform", "synpic300.jpg", "HEAD", "Is this a small image of the head?", "No", "CLOSED", "OTHER"),
    (6, "freeform", "synpic404.jpg", "HEAD", "Is the image file present?", "No", "CLOSED", "OTHER"),
    (7, "freeform", "synpic100.jpg", "CHEST", "Which side is the effusion on?", "", "OPEN", "POS"),
]


def write(root: Path) -> Path:
    base = Path(root) / "VQA_RAD"
    rng = rng_for("vqa_rad")
    for name, size in IMAGES.items():
        write_jpeg(base / "VQA_RAD Image Folder" / name, phantom(rng, *size))
    rows = [{"qid": qid, "phrase_type": phrase, "qid_linked_id": f"link-{index // 2}",
             "image_case_url": f"https://medpix.nlm.nih.gov/case?id={index}", "image_name": image,
             "image_organ": organ, "evaluation": "not evaluated", "question": question,
             "question_rephrase": "NULL", "question_relation": "NULL", "question_frame": "NULL",
             "question_type": qtype, "answer": answer, "answer_type": atype}
            for index, (qid, phrase, image, organ, question, answer, atype, qtype) in enumerate(ROWS)]
    write_json(base / "VQA_RAD Dataset Public.json", rows)
    (base / "VQA_RAD Dataset Public.xlsx").write_bytes(b"PK\x03\x04 not read")
    (base / "VQA_RAD Dataset Public.xml").write_text("<root/>\n", encoding="utf-8")
    (base / "Readme.docx").write_bytes(b"PK\x03\x04")
    return base


HUB_REPO = "flaviagiammarino/vqa-rad"


def _hub_text(value) -> str:
    import re

    return re.sub(" +", " ", str(value).lower()).replace(" ?", "?").strip()


def write_hub(root: Path) -> Path:
    """The same rows as `flaviagiammarino/vqa-rad` holds them: scripts/processing.py applied to the sample JSON
    (train = freeform/para, test = test_*; image_name/question/answer kept, duplicates dropped, texts lower-cased,
    images copied byte for byte and embedded; rows whose image file is missing cannot be copied and are absent)."""
    import pyarrow as pa

    from sources.samples.hub import IMAGE_TYPE, image_cell, original_files, parquet_bytes, write_snapshot

    files = original_files(write)
    schema = pa.schema([("image", IMAGE_TYPE), ("question", pa.string()), ("answer", pa.string())])
    out = {}
    for split, phrases, tag in (("train", ("freeform", "para"), "eb8844602202be60"),
                                ("test", ("test_freeform", "test_para"), "e5bc3d208bb4deeb")):
        rows, seen = [], set()
        for qid, phrase, image, organ, question, answer, atype, qtype in ROWS:
            data = files.get(f"VQA_RAD Image Folder/{image}")
            if phrase not in phrases or data is None or (image, question, str(answer)) in seen:
                continue
            seen.add((image, question, str(answer)))
            rows.append({"image": image_cell(data, f"img_{len(rows)}.jpg"), "question": _hub_text(question),
                         "answer": _hub_text(answer)})
        out[f"data/{split}-00000-of-00001-{tag}.parquet"] = parquet_bytes(rows, schema)
    out["README.md"] = b"---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n---\n"
    return write_snapshot(root, HUB_REPO, out)

"""PMC-Inline sample tree: per-paper JSONs inside `PMC-Inline_0.zip` / `PMC-Inline_1.zip` (the latter under a top
folder) and the Baidu figure folder unpacked flat as `figures/PMCxxxxxxx_<figure id>.jpg`.

Papers (texts written here, not taken from PMC): PMC1000001 has a window with two figures (one mentioned twice),
a window whose second figure file is missing, and a window with a single figure; PMC1000002 mentions no figure;
PMC1000003 (in a top folder) has one two-figure window; PMC1000004 is not JSON."""

from __future__ import annotations

import json
from pathlib import Path

from sources.samples.common import phantom, rng_for

FILLER = ("The cohort was followed for a median of three years after the first admission. "
          "Outcomes were recorded by two clinicians blinded to the imaging findings. ")
PAPER_1 = [
    "\nHepatic cysts in a rural cohort\n",
    "Simple hepatic cysts are common and mostly harmless. ",
    "On the baseline scan the lesion was hypodense and sharply marginated (Figure 1). ",
    "The follow-up scan six months later showed partial regression (Figure 2). ",
    "The thin wall seen in Figure 1 did not enhance. ",
    FILLER * 7,
    "Histology of the resected wall is shown in Figure 3. ",
    "Immunostaining for cytokeratin was positive (Figure 4). ",
    FILLER * 7,
    "At discharge the patient was well, as documented in Figure 5. ",
]
PAPER_3 = [
    "\nUltrasound and MRI of a renal mass\n",
    "Ultrasound showed a solid mass in the lower pole (Fig. 1). ",
    "MRI confirmed restricted diffusion in the same region (Fig. 2). ",
    "The mass was resected without complications. ",
]
# paper -> {mention text: figure id}
MENTIONS = {
    "PMC1000001": {"Figure 1": "jcm-01-g001", "Figure 2": "jcm-01-g002", "Figure 3": "jcm-01-g003",
                   "Figure 4": "jcm-01-g004", "Figure 5": "jcm-01-g005"},
    "PMC1000003": {"Fig. 1": "F1", "Fig. 2": "F2"},
}
FIGURES = {"PMC1000001_jcm-01-g001.jpg": (256, 256, 1), "PMC1000001_jcm-01-g002.jpg": (256, 320, 1),
           "PMC1000001_jcm-01-g004.jpg": (240, 240, 3), "PMC1000001_jcm-01-g005.jpg": (200, 300, 3),
           "PMC1000003_F1.jpg": (224, 224, 1), "PMC1000003_F2.jpg": (224, 224, 1)}


def paper(pmcid: str, sentences: list[str], pmid: str) -> dict:
    text = "".join(sentences)
    refs = []
    for mention, figure in MENTIONS[pmcid].items():
        start = text.find(mention)
        while start >= 0:
            refs.append({"id": figure, "start": start, "end": start + len(mention)})
            start = text.find(mention, start + 1)
    refs.sort(key=lambda ref: ref["start"])
    return {"info": {"article-type": "research-article", "pmid": pmid, "pmc": pmcid, "publisher-id": f"jcm-{pmid}",
                     "doi": f"10.0000/jcm.{pmid}"},
            "text": text, "img_ref": refs}


def _files() -> dict[str, bytes]:
    from sources.samples.hub import zip_bytes

    def encoded(value) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()

    no_refs = {"info": {"article-type": "editorial", "pmid": "20000002", "pmc": "PMC1000002"},
               "text": "\nAn editorial without figures.\nIt has text only.", "img_ref": []}
    return {
        "README.md": b"---\nlicense: apache-2.0\ntask_categories:\n- text-generation\n---\n# PMC-Inline (sample)\n",
        "PMC-Inline_0.zip": zip_bytes({"PMC1000001.json": encoded(paper("PMC1000001", PAPER_1, "20000001")),
                                       "PMC1000002.json": encoded(no_refs), "PMC1000004.json": b"{\"text\": "}),
        "PMC-Inline_1.zip": zip_bytes({"PMC-Inline_1/PMC1000003.json": encoded(paper("PMC1000003", PAPER_3,
                                                                                      "20000003"))}),
    }


def write(root: Path) -> Path:
    from sources.samples.common import write_jpeg

    base = Path(root) / "PMC-Inline"
    for name, data in _files().items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    rng = rng_for("pmc_inline")
    for name, size in FIGURES.items():
        write_jpeg(base / "figures" / name, phantom(rng, *size))
    return base


HUB_REPO = "chaoyi-wu/PMC-Inline"


def write_hub(root: Path) -> Path:
    """`chaoyi-wu/PMC-Inline` in a Hub cache: the zips and README only (the figures are not on the Hub)."""
    from sources.samples.hub import write_snapshot

    return write_snapshot(root, HUB_REPO, _files())

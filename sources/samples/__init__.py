"""Tiny trees in each dataset's real on-disk layout, generated in code.

`make build-stage1` builds from these when no real data is given, and the tests assert exact records
from them; each writer puts the quirks of its dataset (see SOURCES-CATALOG.md) into its tree.
Every writer is deterministic: the same call writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sources.samples import aptos2019, bci, brats, busi, chexpert, chexpert_plus, cvc_clinicdb, drive, eyepacs, fastmri, glas, ham10000, icg_cxr, isic, iu_xray, ixi, kits, kvasir, kvasir_seg, llava_med, medical_diff_vqa, medical_o1_reasoning_sft, meddialog, medicat, medmcqa, medreason, medthink, medpix2, medqa, mimic_cxr, mimic_cxr_jpg, oct2017, omnimedvqa, pathvqa, pmc_oa, pmc_vqa, pubmedqa, pubmedvision, qata_cov19, quilt_1m, refuge, roco, rocov2, samed2d, slake, synthrad2023, vqa_rad
from sources.samples import bigbio, gmai_vl, internvl_medical, pmc_inline, vl_health

SAMPLE_WRITERS: dict[str, Callable[[Path], Path]] = {
    "slake": slake.write,
    "rocov2": rocov2.write,
    "brats": brats.write,
    "iu_xray": iu_xray.write,
    "chexpert_plus": chexpert_plus.write,
    "roco": roco.write,
    "ham10000": ham10000.write,
    "isic": isic.write,
    "mimic_cxr": mimic_cxr.write,
    "vqa_rad": vqa_rad.write,
    "pathvqa": pathvqa.write,
    "pmc_vqa": pmc_vqa.write,
    "omnimedvqa": omnimedvqa.write,
    "pmc_oa": pmc_oa.write,
    "quilt_1m": quilt_1m.write,
    "llava_med": llava_med.write,
    "pubmedvision": pubmedvision.write,
    "aptos2019": aptos2019.write,
    "eyepacs": eyepacs.write,
    "oct2017": oct2017.write,
    "kvasir": kvasir.write,
    "kvasir_seg": kvasir_seg.write,
    "busi": busi.write,
    "chexpert": chexpert.write,
    "bci": bci.write,
    "drive": drive.write,
    "synthrad2023": synthrad2023.write,
    "ixi": ixi.write,
    "samed2d": samed2d.write,
    "fastmri": fastmri.write,
    "cvc_clinicdb": cvc_clinicdb.write,
    "glas": glas.write,
    "kits": kits.write,
    "refuge": refuge.write,
    "qata_cov19": qata_cov19.write,
    "medqa": medqa.write,
    "pubmedqa": pubmedqa.write,
    "medmcqa": medmcqa.write,
    "medpix2": medpix2.write,
    "icg_cxr": icg_cxr.write,
    "mimic_cxr_jpg": mimic_cxr_jpg.write,
    "medical_diff_vqa": medical_diff_vqa.write,
    "medicat": medicat.write,
    "medical_o1_reasoning_sft": medical_o1_reasoning_sft.write,
    "medthink": medthink.write,
    "medreason": medreason.write,
    "meddialog": meddialog.write,
    "vl_health": vl_health.write,
    "gmai_vl": gmai_vl.write,
    "bigbio": bigbio.write,
    "internvl_medical": internvl_medical.write,
    "pmc_inline": pmc_inline.write,
}


#: The same items in each source's Hugging Face Hub layout (a Hub-cache tree under `root/hub/`), where a
#: Hub copy is supported (docs/sources/hub/): the sample modules' `write_hub`.
HUB_SAMPLE_WRITERS: dict[str, Callable[[Path], Path]] = {
    name: module.write_hub for name, module in sorted(globals().items())
    if getattr(module, "write_hub", None) is not None and getattr(module, "__name__", "").startswith("sources.samples.")
}


def write_sample_tree(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the sample tree of each named source (all by default) under `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return {name: writer(root) for name, writer in SAMPLE_WRITERS.items() if names is None or name in names}

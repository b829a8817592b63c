"""The explicit registry of source adapters: registry name -> adapter class."""

from __future__ import annotations

from sources.base import Source
from sources.aptos2019 import Aptos2019
from sources.bci import Bci
from sources.bigbio import Bigbio
from sources.brats import Brats
from sources.busi import Busi
from sources.chexpert import Chexpert
from sources.chexpert_plus import ChexpertPlus
from sources.cvc_clinicdb import CvcClinicDb
from sources.drive import Drive
from sources.eyepacs import Eyepacs
from sources.fastmri import Fastmri
from sources.gmai_vl import GmaiVl
from sources.glas import Glas
from sources.ham10000 import Ham10000
from sources.icg_cxr import IcgCxr
from sources.internvl_medical import InternvlMedical
from sources.isic import Isic
from sources.iu_xray import IuXray
from sources.ixi import Ixi
from sources.kits import Kits
from sources.kvasir import Kvasir
from sources.kvasir_seg import KvasirSeg
from sources.llava_med import LlavaMed
from sources.medical_diff_vqa import MedicalDiffVqa
from sources.medical_o1_reasoning_sft import MedicalO1ReasoningSft
from sources.medicat import Medicat
from sources.meddialog import Meddialog
from sources.medreason import Medreason
from sources.medthink import Medthink
from sources.medmcqa import Medmcqa
from sources.medpix2 import Medpix2
from sources.medqa import Medqa
from sources.mimic_cxr import MimicCxr
from sources.mimic_cxr_jpg import MimicCxrJpg
from sources.oct2017 import Oct2017
from sources.omnimedvqa import OmniMedVqa
from sources.pathvqa import PathVqa
from sources.pmc_inline import PmcInline
from sources.pmc_oa import PmcOa
from sources.pmc_vqa import PmcVqa
from sources.pubmedqa import Pubmedqa
from sources.pubmedvision import PubMedVision
from sources.qata_cov19 import QataCov19
from sources.quilt_1m import Quilt1m
from sources.refuge import Refuge
from sources.roco import Roco
from sources.rocov2 import Rocov2
from sources.samed2d import Samed2d
from sources.slake import Slake
from sources.synthrad2023 import Synthrad2023
from sources.vl_health import VlHealth
from sources.vqa_rad import VqaRad

SOURCES: dict[str, type[Source]] = {
    "slake": Slake,
    "rocov2": Rocov2,
    "brats": Brats,
    "iu_xray": IuXray,
    "chexpert_plus": ChexpertPlus,
    "roco": Roco,
    "ham10000": Ham10000,
    "isic": Isic,
    "mimic_cxr": MimicCxr,
    "vqa_rad": VqaRad,
    "pathvqa": PathVqa,
    "pmc_vqa": PmcVqa,
    "omnimedvqa": OmniMedVqa,
    "pmc_oa": PmcOa,
    "quilt_1m": Quilt1m,
    "llava_med": LlavaMed,
    "pubmedvision": PubMedVision,
    "aptos2019": Aptos2019,
    "eyepacs": Eyepacs,
    "oct2017": Oct2017,
    "kvasir": Kvasir,
    "kvasir_seg": KvasirSeg,
    "busi": Busi,
    "chexpert": Chexpert,
    "bci": Bci,
    "drive": Drive,
    "synthrad2023": Synthrad2023,
    "ixi": Ixi,
    "samed2d": Samed2d,
    "fastmri": Fastmri,
    "cvc_clinicdb": CvcClinicDb,
    "glas": Glas,
    "kits": Kits,
    "refuge": Refuge,
    "qata_cov19": QataCov19,
    "medqa": Medqa,
    "pubmedqa": Pubmedqa,
    "medmcqa": Medmcqa,
    "medpix2": Medpix2,
    "icg_cxr": IcgCxr,
    "mimic_cxr_jpg": MimicCxrJpg,
    "medical_diff_vqa": MedicalDiffVqa,
    "medicat": Medicat,
    "medical_o1_reasoning_sft": MedicalO1ReasoningSft,
    "medreason": Medreason,
    "meddialog": Meddialog,
    "medthink": Medthink,
    # The T15 sources released as LLaVA-style Hub repos (issue 31)
    "vl_health": VlHealth,
    "gmai_vl": GmaiVl,
    "bigbio": Bigbio,
    "internvl_medical": InternvlMedical,
    "pmc_inline": PmcInline,
}


def get_source(name: str) -> type[Source]:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; `unimed sources` lists the registered ones") from None

"""The stages of a build, one module per stage, named after the stage; `STAGES` is their registry.

Order (pipeline/engine/plan.py): coarse_scores -> coarse_decision -> [task_builders -> task_refine]
-> [near_duplicate_hashes] -> [alignment_prepare -> medgemma_captions -> e5_similarity -> medsiglip_score -> biomedclip_score
-> alignment_cache_write]. Each declares its name and resources (pipeline/stages/base.py).
"""

from __future__ import annotations

from pipeline.stages.alignment_cache_write import AlignmentCacheWriteStage
from pipeline.stages.alignment_prepare import AlignmentPrepareStage
from pipeline.stages.base import Stage
from pipeline.stages.biomedclip_score import BiomedCLIPScoreStage
from pipeline.stages.coarse_decision import CoarseDecisionStage
from pipeline.stages.coarse_scores import CoarseScoreStage
from pipeline.stages.e5_similarity import E5SimilarityStage
from pipeline.stages.medgemma_captions import MedGemmaCaptionStage
from pipeline.stages.medsiglip_score import MedSigLIPScoreStage
from pipeline.stages.near_duplicate_hashes import NearDuplicateHashStage
from pipeline.stages.task_builders import TaskBuildersStage
from pipeline.stages.task_refine import TaskRefineStage

STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (
    CoarseScoreStage, CoarseDecisionStage, TaskBuildersStage, TaskRefineStage, AlignmentPrepareStage,
    MedGemmaCaptionStage, E5SimilarityStage, MedSigLIPScoreStage, BiomedCLIPScoreStage, AlignmentCacheWriteStage,
    NearDuplicateHashStage)}

# The alignment model stages in the order they run: captions, then S, then M, then BiomedCLIP.
ALIGNMENT_MODEL_STAGES = (MedGemmaCaptionStage, E5SimilarityStage, MedSigLIPScoreStage, BiomedCLIPScoreStage)

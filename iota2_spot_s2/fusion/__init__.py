"""Decision-level (late) fusion of classifications: mean, weighted mean, product, vote, DS.

Contract (what every rule assumes):

- **Inputs** are per-class probability stacks ``(K, H, W)``, float in [0, 1], one per source,
  all on **one grid** (:func:`fuse_rasters` warps them onto it) and with **the same class
  order**: increasing class codes, as in iota2's ``PROBAMAP`` and our models' logits. The code
  list is checked (one list per source may be given; they must be equal, else
  :class:`CodeMismatchError`). A pixel where a source's vector holds NaN or only zeros is
  no data for that source; the others are fused without it. Valid vectors are renormalised to
  sum to 1. Class maps ``(H, W)`` are accepted by :func:`fuse_labels` (one-hot vectors).
- **Outputs** (:class:`FusionResult`): fused class codes, confidence (max fused probability),
  fused probabilities summing to 1, and a choice map in iota2's ``DSchoice`` convention — 0 none
  (no source with data, undecided, or a class no source chose), 1 all sources with data agree
  ("both"), 2 the first source alone decided, 3 the second alone; for S > 2 sources ``1 + s``
  is source ``s`` alone and ``S + 2`` several but not all (:func:`choice_map`).

Rules (``rule=``) and what they assume:

- ``mean``: comparable (not necessarily calibrated) probabilities; robust default.
- ``weighted_mean``: as ``mean`` with per-class trust from each source's validation F1,
  ``w[s, k] = F1[s, k] / sum_s F1[s, k]``, renormalised over classes (:func:`class_weights`).
- ``product``: **calibrated**, conditionally independent posteriors with equal priors
  (naive Bayes); floor ``epsilon`` so one source cannot veto a class alone.
- ``vote``: majority of the sources' argmax labels; ``ties="probability"`` (summed probability,
  then source order), ``"undecided"``, or ``"otb"`` (OTB's exact behaviour, the no-data label
  voting) — :mod:`iota2_spot_s2.fusion.vote`.
- ``dempster_shafer_otb``: OTB / iota2 ``FusionOfClassifications -method dempstershafer`` on the
  argmax labels, masses from each source's validation confusion matrix
  (``mob`` = precision | recall | accuracy | kappa), pixel-for-pixel identical to OTB
  (:mod:`iota2_spot_s2.fusion.ds_otb`); probabilities are used only to take the argmax.
- ``dempster_shafer``: probability-aware variant — each source's probabilities discounted by
  the same masses, remaining mass on ignorance, Dempster's rule, pignistic output
  (:mod:`iota2_spot_s2.fusion.dempster_shafer`, which also explains how it differs from OTB's).
  Assumes roughly calibrated probabilities and validation matrices representative of the scene.

Label rules use ``nodata_label`` (where no source has data) and ``undecided_label`` (ties), like
OTB's ``-nodatalabel`` / ``-undecidedlabel`` (both 0 by default, as in OTB).
"""

from iota2_spot_s2.fusion._inputs import RULES, TIES, CodeMismatchError, prepare_stacks
from iota2_spot_s2.fusion.core import (
    FusionPlan,
    FusionResult,
    choice_map,
    fuse_labels,
    fuse_probabilities,
    make_plan,
)
from iota2_spot_s2.fusion.dempster_shafer import (
    dempster_shafer_probabilities,
    mass_of_belief,
    masses_of_belief,
)
from iota2_spot_s2.fusion.ds_otb import dempster_shafer_otb
from iota2_spot_s2.fusion.otb_app import otb_fusion_of_classifications
from iota2_spot_s2.fusion.rasters import FusedRasters, default_names, fuse_rasters, iota2_names
from iota2_spot_s2.fusion.rules import class_weights, mean_rule, product_rule, weighted_mean_rule
from iota2_spot_s2.fusion.vote import majority_vote, vote_shares

__all__ = [
    "RULES",
    "TIES",
    "CodeMismatchError",
    "FusedRasters",
    "FusionPlan",
    "FusionResult",
    "choice_map",
    "class_weights",
    "default_names",
    "dempster_shafer_otb",
    "dempster_shafer_probabilities",
    "fuse_labels",
    "fuse_probabilities",
    "fuse_rasters",
    "iota2_names",
    "majority_vote",
    "make_plan",
    "mass_of_belief",
    "masses_of_belief",
    "mean_rule",
    "otb_fusion_of_classifications",
    "prepare_stacks",
    "product_rule",
    "vote_shares",
    "weighted_mean_rule",
]

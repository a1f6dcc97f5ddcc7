"""``fuse-classify iota2 <route>``: step, features, fuse, check, builders-path (one call each)."""

from __future__ import annotations

import argparse

from iota2_spot_s2.cli_stages import add_cluster_arguments, with_cluster


def _cmd_iota2_step(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import run_step
    from iota2_spot_s2.settings import load_config

    for done in run_step(with_cluster(load_config(args.config), args), tiles=args.tile):
        print(f"{done.tile} seed {done.seed}: {done.classif['classes']}")
    return 0


def _cmd_iota2_features(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import feature_fusion
    from iota2_spot_s2.settings import load_config

    route = feature_fusion(load_config(args.config), tiles=args.tile, seed=args.seed)
    for tile, files in route.files.items():
        print(f"{tile}: " + ", ".join(str(p) for p in files.values()))
    print(f"iota2 cfg registering them: {route.cfg}")
    return 0


def _cmd_iota2_fuse(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import decision_fusion
    from iota2_spot_s2.settings import load_config

    run = with_cluster(load_config(args.config), args)
    for done in decision_fusion(run, tiles=args.tile, rule=args.rule):
        print(f"{done.tile} seed {done.seed} ({done.rule}, iota2 {done.iota2_source}, "
              f"masses from {done.validation}): {done.paths['classes']}")  # fmt: skip
        for name, sc in done.scores.items():
            print(f"  {name:6s} OA {sc['overall_accuracy']:.4f}  kappa {sc['kappa']:.4f}  "
                  f"mean F1 {sc['mean_f1']:.4f}  ({sc['pixels']} test px)")  # fmt: skip
    return 0


def _cmd_iota2_check(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import check_cfg_paths
    from iota2_spot_s2.iota2.cfg import check_cfg_inputs, generation_line
    from iota2_spot_s2.settings import load_config

    checked = check_cfg_paths(args.config)  # every check before any line: a refused cfg
    check_cfg_inputs(load_config(args.config))  # a refused cfg prints its one error line only
    for name, path in checked:
        print(f"{name}: {path}")
    print(generation_line(args.config))
    print(f"{args.config}: every path exists; the spot_s2_fusion section is valid")
    return 0


def _cmd_iota2_builders_path(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2.builders import builders_folder

    print(builders_folder())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fuse-classify iota2 <route>``."""
    group = sub.add_parser("iota2", help="iota2 plugin: the FCN step, feature and decision fusion")
    routes = group.add_subparsers(dest="route", required=True)
    handlers = {
        "step": (_cmd_iota2_step, "SPOT FCN per tile into spot_s2/classif/ (iota2 names)"),
        "features": (_cmd_iota2_features, "feature level: SPOT userFeat tree + cfg registering it"),
        "fuse": (_cmd_iota2_fuse, "decision level: iota2's classif/ fused with the SPOT FCN's"),
        "check": (_cmd_iota2_check, "check every path and the plugin section of an iota2 cfg"),
        "builders-path": (_cmd_iota2_builders_path, "folder for iota2's builders.builders_paths"),
    }
    for name, (func, text) in handlers.items():
        p = routes.add_parser(name, help=text)
        if name == "builders-path":
            p.set_defaults(func=func)
            continue
        p.add_argument("config", help="iota2 cfg file with a spot_s2_fusion section")
        if name != "check":
            p.add_argument("--tile", action="append", help="only this tile (repeatable)")
        if name == "features":
            p.add_argument("--seed", type=int, default=0, help="seed of the FCN to use")
        if name in ("step", "fuse"):
            add_cluster_arguments(p, cfg=True)
        if name == "fuse":
            p.add_argument("--rule", type=_late_rule, help="late-fusion rule: mean, weighted_mean, "
                           "product, vote, dempster_shafer, dempster_shafer_otb "
                           "(default: the cfg's decision_rule)")  # fmt: skip
        p.set_defaults(func=func)


def _late_rule(text: str) -> str:
    """A late-fusion rule name; the settings (and torch) are imported only when one is given."""
    from iota2_spot_s2.settings import LATE_RULES

    if text not in LATE_RULES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LATE_RULES)}, got {text!r}")
    return text

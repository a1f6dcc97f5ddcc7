"""Analyses made from evaluated maps: per-class sensor complementarity and nomenclature choice.

- :mod:`.pages`: one report written three ways (JSON numbers, Markdown, self-contained HTML
  with embedded PNG figures), always stating whether the data is real or simulated.
- :mod:`.complementarity`: which classes gain from SPOT, from Sentinel-2, or only from fusion.
- :mod:`.nomenclature_tree`: which and how many classes can be mapped reliably.
"""

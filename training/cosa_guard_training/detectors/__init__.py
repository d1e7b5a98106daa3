"""Corpora and trainers of the shipped detectors: the category judge and the injection classifier.

Nothing at run time imports this package: the runtime loads the weights these trainers write into
`cosa_guard/data/` (`cosa-guard train judge`, `cosa-guard train injection`).
"""

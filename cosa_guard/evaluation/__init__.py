"""Offline evaluation: run a dataset through a guard or a judge and score its decisions (cosa-guard eval)."""

"""The CoSAlign training recipe for cosa_guard: configs → responses → labels → pairs → SFT → DPO.

Run it as `cosa-guard train --recipe NAME --output DIR` (see docs/training.md). Importing this
package is light: torch, transformers and TRL load only inside the training step.
"""

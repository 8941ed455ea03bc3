"""Supervised multi-task learning (NYUv2, CityScapes, CelebA) through the same aggregators as RL (SPEC §6).

``python -m mtrl.supervised.train benchmark=nyuv2 aggregator=imgrad data.root=/path/to/nyuv2``; modules:
``data`` (loaders, never download), ``synthetic`` (small learnable data in the same layouts), ``models`` (MTAN
SegNet, CelebA CNN), ``metrics`` (losses, metrics, ``delta_m``), ``trainer`` (the loop), ``train`` (the CLI).
"""

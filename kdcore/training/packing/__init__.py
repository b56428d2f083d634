"""Packed training: runs of one network, data and recipe trained together, one step for all of them.
``key`` says which runs may pack (torch-free); ``trainer`` trains a pack with the ``vmapped`` step (a
GPU's) or the ``looped`` one (a CPU's, and any bfloat16 pack)."""

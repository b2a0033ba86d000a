"""Thin nipype wrappers around :mod:`bidsapp.core`: load, check, call core, save."""

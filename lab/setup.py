"""Setuptools shim for petguard-lab; the metadata lives in setup.cfg."""

import setuptools

setuptools.setup()

"""The openstacksdk adapter: Nova's compute API (``compute``, the ``Compute`` seam) and Placement (``placement``)."""

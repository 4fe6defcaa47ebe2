"""Allow `python -m petguard_lab`."""

from petguard_lab.cli import main

raise SystemExit(main())

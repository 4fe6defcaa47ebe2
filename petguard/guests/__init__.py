"""Instance health: which guests on a live host need a restart (``policy``, pure) and doing it (``restarts``)."""

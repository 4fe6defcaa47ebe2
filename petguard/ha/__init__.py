"""High availability among controllers: the leader election (``election``) and the acting path's guards."""

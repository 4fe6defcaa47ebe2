"""Files the lab installs beside its OpenStack services (not imported): the package marker only lets
setuptools ship them as package data without a warning."""

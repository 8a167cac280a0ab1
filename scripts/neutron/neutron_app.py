"""Neutron's API as a WSGI app for gunicorn.

neutron 29.0.0 ships no `neutron-server`: the API is `neutron.wsgi.api:application`, whose import
runs oslo.config over sys.argv. Under gunicorn sys.argv holds gunicorn's own options, which
oslo.config refuses, so the import runs with an argv of its own. The config files come from
OS_NEUTRON_CONFIG_DIR and OS_NEUTRON_CONFIG_FILES, set by neutron-up.sh.
"""
import sys

_argv = sys.argv
sys.argv = ["neutron-api"]
try:
    from neutron.wsgi.api import application  # noqa: F401  (what gunicorn serves)
finally:
    sys.argv = _argv

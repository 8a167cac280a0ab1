"""Builds Neutron's schema from its models: `python neutron_schema.py DB_URL`.

`neutron-db-manage upgrade heads` fails on PostgreSQL 15 (a 2025.2 migration runs MySQL-only SQL)
and on SQLite; Neutron's own unit tests build the schema from the models instead, as this does.
"""
import sys

import sqlalchemy as sa
from neutron.db.migration.models import head  # noqa: F401  (imports every model)
from neutron_lib.db import model_base

model_base.BASEV2.metadata.create_all(sa.create_engine(sys.argv[1]))

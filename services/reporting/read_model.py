"""Reporting's read models: SQL tables fed from the other services' events. They hold no
personal data: references, codes, times and counts. Any of them can be dropped and
rebuilt by replaying the source logs, with an identical result
(``shared.eventstore.projection``).

The tables are declared on ``metadata`` beside what fills and counts them: the contact
figures in ``contact_events`` (counted by ``contact_figures``), the shift and outreach
figures in ``service_figures``. The directory's names (for signposting) are here.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

directory_names = sa.Table(
    "rm_directory",
    metadata,
    sa.Column("entry_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)

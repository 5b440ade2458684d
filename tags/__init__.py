"""Profiles, tags, RFM, lifecycle stages and segments (gold layer).

Each module holds pure `DataFrame -> DataFrame` transforms; the jobs in `jobs/` read and write the tables.
"""

# Tags and segments: one condition engine (docs/segments.md); the verbs the CLI and the console call.
from cdp.tags.engine import DefinitionError, load_tag_catalog, parse_condition  # noqa: E402,F401
from cdp.tags.segments import (  # noqa: E402,F401
    export_segment, load_segment, load_segments, preview, run_segments, save_segment)

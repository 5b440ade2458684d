"""Profiles, tags, RFM, lifecycle stages and segments (gold layer).

Each module holds pure `DataFrame -> DataFrame` transforms; the jobs in `jobs/` read and write the tables.
"""

# Tags and segments: one condition engine (docs/segments.md); the verbs the CLI and the console call.
from cdp.tags.engine import DefinitionError, load_tag_catalog, parse_condition  # noqa: E402,F401
from cdp.tags.segments import (  # noqa: E402,F401
    export_segment, load_segment, load_segments, preview, run_segments, save_segment)

# Facts, profiles, RFM, lifecycle (docs/tables.md, docs/rfm_lifecycle.md); the job is cdp.build_profiles.
from cdp.tags.facts import build_order_facts, orders_from_facts  # noqa: E402,F401
from cdp.tags.lifecycle import build_lifecycle  # noqa: E402,F401
from cdp.tags.profiles import build_profiles  # noqa: E402,F401
from cdp.tags.rfm import build_rfm  # noqa: E402,F401

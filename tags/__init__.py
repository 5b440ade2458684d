"""Profiles, tags, RFM, lifecycle stages and segments (gold layer).

Each module holds pure `DataFrame -> DataFrame` transforms; the jobs in `jobs/` read and write the tables.
"""

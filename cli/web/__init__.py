"""`livedash serve`: the status web page, server-rendered from the projections and the log.

Pages read the projection store (and, for one session, its events); actions go through the
same use cases as the CLI (processors/service), so the web holds no business rule of its own.
"""

"""One router per area; every route declares its permission with ``require()``."""
